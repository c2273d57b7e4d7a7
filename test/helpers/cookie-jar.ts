// A browser's cookie jar for HTTP-level login tests, reduced to what they need: cookies per host
// (ports share cookies, as in browsers), Path matching, Max-Age=0 deletes, and the attributes of
// each Set-Cookie kept for assertions.

export interface StoredCookie {
  name: string;
  value: string;
  path: string;
  /** Lowercased attribute names → values ("" for flags such as HttpOnly). */
  attributes: Record<string, string>;
}

export class CookieJar {
  private readonly byHost = new Map<string, Map<string, StoredCookie>>();

  /** Takes the Set-Cookie headers of a response to `url`. */
  store(url: string, setCookie: string | string[] | undefined): StoredCookie[] {
    const host = new URL(url).hostname;
    let jar = this.byHost.get(host);
    if (!jar) this.byHost.set(host, (jar = new Map()));
    const parsed: StoredCookie[] = [];
    for (const line of setCookie === undefined ? [] : [setCookie].flat()) {
      const [pair = '', ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      const cookie: StoredCookie = {
        name: pair.slice(0, eq).trim(),
        value: pair.slice(eq + 1).trim(),
        path: '/',
        attributes: {},
      };
      for (const a of attrs) {
        const i = a.indexOf('=');
        const k = (i < 0 ? a : a.slice(0, i)).trim().toLowerCase();
        cookie.attributes[k] = i < 0 ? '' : a.slice(i + 1).trim();
      }
      cookie.path = cookie.attributes.path ?? '/';
      parsed.push(cookie);
      const key = `${cookie.path}\0${cookie.name}`;
      if (cookie.attributes['max-age'] === '0') jar.delete(key);
      else jar.set(key, cookie);
    }
    return parsed;
  }

  /** The Cookie header a browser would send to `url` (undefined when none). */
  header(url: string): string | undefined {
    const u = new URL(url);
    const cookies = [...(this.byHost.get(u.hostname)?.values() ?? [])].filter(
      (c) =>
        u.pathname === c.path ||
        u.pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`),
    );
    return cookies.length > 0 ? cookies.map((c) => `${c.name}=${c.value}`).join('; ') : undefined;
  }

  get(host: string, name: string): StoredCookie | undefined {
    return [...(this.byHost.get(host)?.values() ?? [])].find((c) => c.name === name);
  }

  names(host: string): string[] {
    return [...(this.byHost.get(host)?.values() ?? [])].map((c) => c.name);
  }

  set(host: string, name: string, value: string, path = '/'): void {
    let jar = this.byHost.get(host);
    if (!jar) this.byHost.set(host, (jar = new Map()));
    jar.set(`${path}\0${name}`, { name, value, path, attributes: {} });
  }
}
