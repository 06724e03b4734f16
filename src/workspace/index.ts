// The workspace reader: what the ingest pipeline reads, in which order, and how each file is framed; and what the
// workspace answers to the questions a five-kind model is trained on (symbols.ts).

export { walkWorkspace, readWorkspaceFile, WorkspaceError, DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_LINE_LENGTH } from './walk';
export type { WorkspaceFile, SkippedFile, WorkspaceListing, WorkspaceOptions } from './walk';
export { DEFAULT_SECRET_PATTERNS, type SkipReason } from './classify';
export { FRAME_VERSION, MAX_LISTED_DEFINITIONS, definedNames, definitionsIndex, definitionsLine, frameFile, listedNames, type FileTokens } from './frame';
export { compileIgnore, isIgnored, type IgnoreRule, type IgnoreRuleSet } from './ignore';
export { MAX_USAGES, answerText, definitionOf, firstSentence, outlineOf, signatureOf, summaryOf, usagesOf, type QuestionKind, type SourceText } from './symbols';
