/** A config folder that cannot be read at all (missing, not a folder): the CLI prints it and exits 1. */
export class ConfigFolderError extends Error {}
