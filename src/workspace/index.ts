// The workspace reader: what the ingest pipeline reads, in which order, and how each file is framed.

export { walkWorkspace, readWorkspaceFile, WorkspaceError, DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_LINE_LENGTH } from './walk';
export type { WorkspaceFile, SkippedFile, WorkspaceListing, WorkspaceOptions } from './walk';
export { DEFAULT_SECRET_PATTERNS, type SkipReason } from './classify';
export { FRAME_VERSION, definedNames, definitionsIndex, definitionsLine, frameFile, type FileTokens } from './frame';
export { compileIgnore, isIgnored, type IgnoreRule, type IgnoreRuleSet } from './ignore';
