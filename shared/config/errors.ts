import { formatLocation, formatPath, type FieldPath, type SourceLocation } from './resource.ts';

/** A problem with the user's config. Data, not an exception: it names where it is and what is wrong. */
export interface ConfigError {
  location: SourceLocation;
  /** Field path inside the document, such as `spec.rules[0].matches[0].path.type`; empty for the whole document. */
  path: string;
  message: string;
  /** `kind/namespace/name` when the document got far enough to have one. */
  resource?: string;
}

export function configError(
  location: SourceLocation,
  path: FieldPath | string,
  message: string,
  resource?: string,
): ConfigError {
  const p = typeof path === 'string' ? path : formatPath(path);
  return resource === undefined
    ? { location, path: p, message }
    : { location, path: p, message, resource };
}

export function formatConfigError(e: ConfigError): string {
  return `${formatLocation(e.location)} ${e.path ? `${e.path}: ` : ''}${e.message}`;
}
