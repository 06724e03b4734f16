// Questions and completions on top of the workspace state, without destroying it: fork (copy the Mamba
// state, mark the KV length), run, roll back. For a path-answering model, also what a question asks (one of five
// kinds, read from untidy typing), the question put as the model was trained to read it, and the answers it may give.

import { chatFormat, chatQuestionTokens } from './chat';
import { generateTokens, type GenerateOptions } from './generate';
import type { LanguageModel } from './model';
import type { TextTokenizer } from './tokenizer';
import { MAX_LISTED_DEFINITIONS } from '../workspace/frame';
import { MAX_USAGES, type QuestionKind } from '../workspace/symbols';

/**
 * Question tokens fed one at a time over a sparse context (GenerateOptions.exactTail): a question is short, and
 * each of its tokens then selects the workspace blocks its own query points at (the name asked about, say).
 */
export const ASK_EXACT_TAIL = 16;

/** A question read as one of the kinds a path-answering model is trained on (see questionKind). */
export interface QuestionKindMatch {
  kind: QuestionKind;
  /** The name asked about, or for outline the file's path ('/'-separated, without a leading './'). */
  subject: string;
  /** false when no phrasing matched and the kind was guessed from the question's most code-like word. */
  exact: boolean;
}

/**
 * The question of each kind exactly as the training data asks it (train/data.py), the subject in backticks as the
 * file index writes names and paths: a question typed otherwise is tokenized differently and the model misses it.
 */
export function kindQuestion(kind: QuestionKind, subject: string): string {
  const s = `\`${subject}\``;
  switch (kind) {
    case 'definition':
      return `Where is ${s} defined?`;
    case 'usages':
      return `Where is ${s} used?`;
    case 'signature':
      return `What are the parameters of ${s}?`;
    case 'summary':
      return `What does ${s} do?`;
    case 'outline':
      return `What is defined in ${s}?`;
  }
}

// Phrasings of each kind, matched (case-insensitively, whole) against the tidied question: single spaces, no
// trailing punctuation, "what's" as "what is", no "can you tell me", no "in the codebase". <name> is a name,
// optionally backticked, after "the" or a word such as "function", before "()"; <file> is a path.
const NAME = String.raw`(?:the )?(?:(?:function|func|method|class|type|interface|enum|struct|constant|const|variable|var|symbol|def) )?\x60?([A-Za-z_$][\w$]*)\x60?(?: ?\([^)]*\))?`;
const FILE = String.raw`(?:the )?(?:(?:file|module) )?\x60?([^\s\x60]+)\x60?`;
const THINGS = String.raw`(?:top[- ]level )?(?:functions|classes|names|definitions|defs|symbols|methods|types|exports|things|constants)(?: and (?:functions|classes|types|methods|constants))?`;
const PARAMS = String.raw`(?:params|parameters|arguments|args|arg list|argument list|parameter list|signature|call signature|type signature|inputs)`;
const USE = String.raw`(?:used|called|referenced|invoked|imported|consumed)`;
const PHRASINGS: readonly (readonly [QuestionKind, string])[] = [
  // Outline first: "what is defined in a.py" is not a summary of "defined".
  ['outline', 'what (?:is|are|gets|get) (?:defined|declared) in <file>'],
  ['outline', 'what is in(?:side)? <file>'],
  ['outline', 'what (?:does|do) <file> (?:define|declare|contain|export|have)'],
  ['outline', '(?:the )?(?:outline|contents?|structure|overview|symbols) (?:of|for|in) <file>'],
  ['outline', `(?:the )?${THINGS} (?:in|inside|(?:defined|declared) in) <file>`],
  ['outline', 'outline <file>'],
  ['outline', '<file> outline'],
  ['outline', `(?:list|show|give me|get|name|enumerate)(?: all)?(?: the)? ${THINGS} (?:in|of|from|(?:defined|declared) in) <file>`],
  ['outline', `(?:what|which)(?: are the)? ${THINGS} (?:are )?(?:there )?(?:in|(?:defined|declared|exported) (?:in|by|from)) <file>`],
  ['outline', `(?:what|which) ${THINGS} (?:does|do) <file> (?:define|declare|export|contain|have)`],
  // Usages before definition: "where is foo used" is not "where is foo".
  ['usages', `where (?:is|are) <name> ${USE}(?: from)?`],
  ['usages', `where <name> (?:is|are) ${USE}(?: from)?`],
  ['usages', `where (?:does|do) <name> (?:get )?${USE}`],
  ['usages', 'where (?:do|does|did|can) (?:we|i|you|they|people|others) (?:use|call|reference|invoke|import) <name>'],
  ['usages', '(?:who|what|which (?:files?|functions?|modules?|code|callers)) (?:calls|uses|references|invokes|imports|call|use|reference|invoke|import|depends on) <name>'],
  ['usages', '(?:(?:find|show|list|get|give me|search for)(?: me)? )?(?:all )?(?:the )?(?:references|refs|usages|uses|usage|callers|call sites|calls|users|consumers|occurrences|mentions) (?:to|of|for) <name>'],
  ['usages', `in which files? (?:is|are) <name> ${USE}`],
  ['usages', `is <name> ${USE} (?:anywhere|somewhere|elsewhere)`],
  ['usages', '<name> (?:usages|references|callers|uses|call sites)'],
  ['signature', `what (?:are|is) (?:the )?${PARAMS} (?:of|for|to|that) <name>(?: takes?| accepts?| expects?)?`],
  ['signature', `(?:(?:show|give|get|find)(?: me)? )?(?:the )?${PARAMS} (?:of|for) <name>`],
  ['signature', `<name>(?:'s)? ${PARAMS}`],
  ['signature', 'how (?:do|can|should|would|to) (?:i |we |you |one )?(?:call|invoke|use) <name>'],
  ['signature', 'what (?:does|do) <name> (?:take|accept|expect|need|require)(?: as (?:arguments|parameters|params|args|input))?'],
  ['signature', `what ${PARAMS} (?:does|do) <name> (?:take|accept|expect|need|have|require)`],
  ['summary', 'what (?:does|do|did) <name> do'],
  ['summary', 'what <name> does'],
  ['summary', 'what (?:is|are) <name>(?: (?:for|used for|about|meant for|supposed to do|meant to do))?'],
  ['summary', 'what is the (?:purpose|point|job|role|use) of <name>'],
  ['summary', '(?:the )?(?:purpose|point|docs?|docstring|documentation|description|summary|meaning) (?:of|for) <name>'],
  ['summary', '(?:explain|describe|summari[sz]e|document)(?: to me)?(?: what)? <name>(?: does| is| do)?'],
  ['summary', 'about <name>'],
  ['summary', 'how does <name> work'],
  ['definition', 'where (?:is|are) <name>(?: (?:defined|declared|implemented|located|created|written|kept|found|from))?'],
  ['definition', 'where <name> (?:is|are)(?: (?:defined|declared|implemented|located))?'],
  ['definition', 'where (?:does|do) <name> (?:live|come from|reside|sit)'],
  ['definition', 'where (?:can|do|would|could|should) (?:i|we|you) find <name>'],
  ['definition', '(?:(?:find|show|get|give me|go to|jump to|locate|open)(?: me)? )?(?:the )?(?:definition|declaration|source|implementation|source code|code) (?:of|for) <name>'],
  ['definition', '(?:which|what) (?:file|module) (?:defines|declares|implements|has|contains|holds) <name>'],
  ['definition', '(?:in )?(?:which|what) (?:file|module) (?:is|are) <name>(?: (?:defined|declared|implemented|in))?(?: in)?'],
  ['definition', 'who (?:defines|declares|implements) <name>'],
  ['definition', '(?:locate|find) <name>'],
  ['definition', '<name> (?:definition|declaration)'],
];
const PATTERNS = PHRASINGS.map(([kind, p]) => [kind, new RegExp(`^${p.replace('<name>', () => NAME).replace('<file>', () => FILE)}$`, 'i')] as const);

/** Words that are never the subject of a question ("where is it used"), and never a guessed one. */
const NOT_SUBJECTS = new Set(
  (
    'a an the and or but if of in on at by for with about to from into onto over under up down out off as is are was were be been being am ' +
    'do does did done doing have has had i me my we us our you your he she him her it its they them their this that these those there here ' +
    'what which who whom whose where when why how all any both each some such no not only own same so than too very can will just should ' +
    'could would may might must shall also please tell show give find list get explain describe define defined declared implemented used ' +
    'called uses calls use call function functions class classes method methods file files module modules code codebase workspace project ' +
    'repo variable type name names parameter parameters params arguments args signature definition definitions usage usages reference ' +
    'references caller callers outline summary work works mean means thing things something anything everything take takes ok okay thanks ' +
    'thank hello hi hey yes yeah'
  ).split(' '),
);

/** Extensions that make a word a file path in a question ("what is in util.ts"); "self.parse" is no path. */
const SOURCE_EXT = /\.(?:py|pyi|ts|tsx|mts|cts|js|jsx|mjs|cjs|json|md|go|rs|java|kt|c|h|cc|cpp|hpp|cs|rb|php|swift|scala|lua|sh|sql|css|scss|html|vue|svelte|yaml|yml|toml|wgsl)$/i;

const isName = (s: string) => /^[A-Za-z_$][\w$]*$/.test(s) && !NOT_SUBJECTS.has(s.toLowerCase());
const asPath = (s: string) => s.replace(/\\/g, '/').replace(/^\.\//, '').replace(/[,;:]+$/, '');
const isPathLike = (s: string) => SOURCE_EXT.test(s) || (s.includes('/') && s.split('/').some((part) => /\w/.test(part) && !NOT_SUBJECTS.has(part.toLowerCase())));

/** The question in one form for the phrasings: see PHRASINGS. */
function tidy(question: string): string {
  return question
    .replace(/[\u2018\u2019]/g, "'")
    .replace(/\s+/g, ' ')
    .trim()
    .replace(/[\s?.!]+$/, '')
    .replace(/^(?:(?:hey|hi|ok|okay|so|please),? )*(?:(?:can|could|would|will) you (?:please )?)?(?:(?:tell|show) me )?(?:please )?/i, '')
    .replace(/\b(what|where|who|how)'s\b/gi, '$1 is')
    .replace(/ (?:in|across|within|throughout) (?:the|this|our|my) (?:code ?base|workspace|project|repo(?:sitory)?|source(?: code)?|code)$/i, '');
}

/**
 * The closest kind for a question no phrasing matched: a path in it asks for the file's outline, else its most
 * code-like word (backticked, called with "()", snake_case, camelCase, with digits, or capitalised mid-sentence;
 * never a NOT_SUBJECTS word) for what that name does. null when it has neither.
 */
function guessKind(question: string): QuestionKindMatch | null {
  const words = question.split(' ').map((raw, i) => ({ raw, i, word: raw.replace(/^[^\w$./~]+|[^\w$]+$/g, '') }));
  const path = words.find((w) => isPathLike(w.word));
  if (path) return { kind: 'outline', subject: asPath(path.word), exact: false };
  let best: { word: string; score: number } | null = null;
  for (const { raw, i, word } of words) {
    if (!isName(word)) continue;
    const score =
      (raw.includes('`') ? 4 : 0) +
      (/[\w$]\(/.test(raw) ? 3 : 0) +
      (word.includes('_') ? 2 : 0) +
      (/[a-z][A-Z]/.test(word) ? 2 : 0) +
      (/\d/.test(word) ? 1 : 0) +
      (i > 0 && /^[A-Z]/.test(word) ? 1 : 0);
    if (score > 0 && (!best || score > best.score)) best = { word, score };
  }
  return best ? { kind: 'summary', subject: best.word, exact: false } : null;
}

/**
 * What a question asks, read from plain, untidy typing ("who calls parse_args?", "what's in lib/util.ts",
 * "how do I call foo()"): the kind, its subject, and whether a phrasing of that kind matched (exact) or the kind was
 * guessed (guessKind). null for a question with neither a phrasing nor a code-like word.
 */
export function questionKind(question: string): QuestionKindMatch | null {
  const q = tidy(question);
  for (const [kind, re] of PATTERNS) {
    const m = re.exec(q);
    if (!m) continue;
    const subject = kind === 'outline' ? asPath(m[1]) : m[1];
    if (kind === 'outline' ? /\w/.test(subject) && !NOT_SUBJECTS.has(subject.toLowerCase()) : isName(subject)) return { kind, subject, exact: true };
  }
  return guessKind(q);
}

/**
 * The question as a path-answering model (tokenizer flag sidewinder_file_index) was trained to read it: a model of
 * the five kinds (sidewinder_question_kinds) gets the canonical question of the kind read (kindQuestion), guessed
 * or not; a definition-only one (today's bundled model) gets "Where is `NAME` defined?" for a definition question
 * however it was typed ("where's the function foo() declared"). Other questions, and other models, are left as
 * they are.
 */
export function canonicalQuestion(tok: Pick<TextTokenizer, 'special'>, question: string): string {
  const typed = question.trim();
  if (!tok.special.fileIndex) return typed;
  const k = questionKind(typed);
  if (!k || !(tok.special.questionKinds || (k.kind === 'definition' && k.exact))) return typed;
  return kindQuestion(k.kind, k.subject);
}

/**
 * What to tell the user about how a path-answering model took the question, or null: a definition-only model
 * names a file of the workspace whatever the question; a five-kind model answers a guessed kind as its canonical
 * question, and a question of no kind as best it can. Other models answer freely (null).
 */
export function questionNote(tok: Pick<TextTokenizer, 'special'>, question: string): string | null {
  if (!tok.special.fileIndex) return null;
  const k = questionKind(question);
  if (!tok.special.questionKinds) {
    if (k?.kind === 'definition' && k.exact) return null;
    return 'This model answers "Where is NAME defined?" with a file of the workspace, whatever the question. For other questions, use a chat model such as Granite 4.0-H (Sidewinder: Download Model, then Sidewinder: Select Model).';
  }
  if (!k) {
    return 'This model answers five kinds of question about a name or a file: where `NAME` is defined, where it is used, its parameters, what it does, and what is defined in `PATH`. A downloaded chat model such as Granite 4.0-H answers freely (Sidewinder: Download Model).';
  }
  if (k.exact) return null;
  return `Answered as "${kindQuestion(k.kind, k.subject)}" (the closest question this model answers). A downloaded chat model such as Granite 4.0-H answers freely (Sidewinder: Download Model).`;
}

/**
 * The tokens that follow the workspace for a question. With a chat template, the rest of the user turn and
 * the assistant header; otherwise, with a file-separator token, the question is framed as one more "file"
 * after the workspace (the convention the bundled model is trained with), or as plain text.
 */
export function questionTokens(tok: Pick<TextTokenizer, 'encode' | 'special'> & { config?: Record<string, unknown> }, question: string): number[] {
  // A chat model: the question closes the user turn that the workspace opened (see chat.ts).
  const format = chatFormat(tok.config);
  if (format) return chatQuestionTokens(tok, format, question);
  const body = tok.encode(`Question: ${canonicalQuestion(tok, question)}\nAnswer:`);
  return tok.special.fileSep !== null ? [tok.special.fileSep, ...body] : [...tok.encode('\n\n'), ...body];
}

/** A trie of answer items (paths), token by token: `item` >= 0 where one ends; `below`, how many end below. */
interface ItemTrie {
  next: Map<number, ItemTrie>;
  item: number;
  below: number;
}

/**
 * Per tokenizer: each path's answer tokens (encoding is the slow part: ~0.15 ms a path, 3 s for 20K files), the
 * last trie with the path list it was built from (questions about one workspace reuse it), and each token's text
 * with the tokens allowed from each state of an outline answer (namesConstraint), read from the vocabulary once.
 */
const answerCache = new WeakMap<
  object,
  { ids: Map<string, number[]>; key: string; trie: ItemTrie | null; texts: string[] | null; namesAllowed: Map<string, number[]> }
>();
const MAX_CACHED_PATHS = 200_000;

function cacheOf(tok: object) {
  let cache = answerCache.get(tok);
  if (!cache) answerCache.set(tok, (cache = { ids: new Map(), key: '', trie: null, texts: null, namesAllowed: new Map() }));
  return cache;
}

/** The trie of ` `path`` for each path, tokenized as in training (no end token: answers may list several). */
function pathTrie(tok: Pick<TextTokenizer, 'encode'>, paths: Iterable<string>): ItemTrie {
  const list = [...paths];
  const cache = cacheOf(tok);
  const key = list.join('\0');
  if (cache.key === key && cache.trie) return cache.trie;
  if (cache.ids.size > MAX_CACHED_PATHS) cache.ids.clear();
  const root: ItemTrie = { next: new Map(), item: -1, below: 0 };
  list.forEach((p, item) => {
    let ids = cache.ids.get(p);
    if (!ids) cache.ids.set(p, (ids = tok.encode(` \`${p}\``)));
    let node = root;
    for (const id of ids) {
      node.below++;
      let next = node.next.get(id);
      if (!next) node.next.set(id, (next = { next: new Map(), item: -1, below: 0 }));
      node = next;
    }
    if (node.item < 0) {
      node.item = item;
      node.below++;
    }
  });
  cache.key = key;
  cache.trie = root;
  return root;
}

/**
 * Answers that list 1 to `max` distinct items of `root` in a row (` `a` `b``: the tokens of the whole answer are
 * the items' tokens one after the other, since the tokenizer splits words before a space), then the end; or, with
 * `empty`, the answer ` empty` then the end. Off every such answer (tokens forced by hand), no constraint.
 */
function listConstraint(root: ItemTrie, end: number, max: number, emptyIds: readonly number[] | null): NonNullable<GenerateOptions['allowedNext']> {
  const empty = emptyIds && [...emptyIds, end];
  return (generated) => {
    const items = walkItems(root, end, max, generated);
    if (!empty || generated.length > empty.length || !generated.every((id, i) => id === empty[i])) return items;
    // On the way to the empty answer (" none"): its next token, besides any item's.
    const next = generated.length < empty.length ? [empty[generated.length]] : [];
    return items ? [...new Set([...next, ...items])] : next;
  };
}

/** The tokens a list of items may continue with after `generated`; [] after its end, null when off the list. */
function walkItems(root: ItemTrie, end: number, max: number, generated: readonly number[]): number[] | null {
  const done: ItemTrie[][] = []; // the nodes of each item already listed
  let chain: ItemTrie[] = [];
  let node = root;
  for (let i = 0; i < generated.length; i++) {
    const id = generated[i];
    const child = node.next.get(id);
    if (child) {
      node = child;
      chain.push(child);
    } else if (node.item >= 0 && id === end) {
      return i === generated.length - 1 ? [] : null;
    } else if (node.item >= 0 && done.length + 1 < max && root.next.has(id)) {
      done.push(chain);
      node = root.next.get(id)!;
      chain = [node];
    } else return null;
  }
  // A branch is open while it leads to an item not listed yet.
  const open = (n: ItemTrie, listed: ItemTrie[][]) => n.below > listed.filter((c) => c.includes(n)).length;
  const allowed = [...node.next].filter(([, n]) => open(n, done)).map(([id]) => id);
  if (node.item >= 0) {
    allowed.push(end);
    // The next item, other than this one and those before it.
    const listed = [...done, chain];
    if (listed.length < max) for (const [id, n] of root.next) if (open(n, listed) && !allowed.includes(id)) allowed.push(id);
  }
  return allowed;
}

/**
 * For a model trained to answer with a path from the file index (tokenizer flag sidewinder_file_index, as the
 * bundled model is), the answer kept to the workspace's own paths: each token must continue ` `path`` of some
 * file, tokenized as in training, then end the answer. The model still chooses the file; it can no longer name
 * one that does not exist (a near-copy such as `_createCuryein.js`). undefined for other models (they answer in
 * prose) and when there is no path or no end-of-text token.
 */
export function pathAnswerConstraint(
  tok: Pick<TextTokenizer, 'encode' | 'special'>,
  paths: Iterable<string>,
): GenerateOptions['allowedNext'] {
  const end = tok.special.eos;
  if (!tok.special.fileIndex || end === null) return undefined;
  const root = pathTrie(tok, paths);
  return root.next.size ? listConstraint(root, end, 1, null) : undefined;
}

/** The text of every token of the vocabulary, '' for those that are no text alone (special tokens, part bytes). */
function tokenTexts(tok: Pick<TextTokenizer, 'decode'>, vocabSize: number): string[] {
  const cache = cacheOf(tok);
  if (!cache.texts || cache.texts.length !== vocabSize) {
    cache.namesAllowed.clear();
    cache.texts = Array.from({ length: vocabSize }, (_, id) => {
      const t = tok.decode([id]);
      return t.includes('\uFFFD') ? '' : t;
    });
  }
  return cache.texts;
}

// An outline answer, character by character: ' ' then '`NAME`' (NAME 4+ of [A-Za-z0-9_$], not starting with a
// digit) repeated with ' ' between, at most MAX_LISTED_DEFINITIONS times; or ' nothing'. States: 'start', 'lead'
// (after the first space), 'open' (after a '`'), 'name1'..'name4' (name4: 4 or more characters), 'closed' (after the
// closing '`', accepting), 'sep' (the space after it), 'nothingK' (K letters of 'nothing'; nothing7 accepting).
type NamesState = { at: string; names: number };

function stepNames(s: NamesState, c: string): NamesState | null {
  const nameChar = /[\w$]/.test(c);
  const { at, names } = s;
  if (at === 'start') return c === ' ' ? { at: 'lead', names } : null;
  if (at === 'lead') return c === '`' ? { at: 'open', names } : c === 'n' ? { at: 'nothing1', names } : null;
  if (at === 'sep') return c === '`' ? { at: 'open', names } : null;
  if (at === 'open') return nameChar && !/\d/.test(c) ? { at: 'name1', names } : null;
  if (at.startsWith('name')) {
    const len = Number(at.slice(4));
    if (nameChar) return { at: `name${Math.min(4, len + 1)}`, names };
    return c === '`' && len === 4 ? { at: 'closed', names: names + 1 } : null;
  }
  if (at === 'closed') return c === ' ' && names < MAX_LISTED_DEFINITIONS ? { at: 'sep', names } : null;
  if (at.startsWith('nothing')) {
    const k = Number(at.slice(7));
    return k < 7 && c === 'nothing'[k] ? { at: `nothing${k + 1}`, names } : null;
  }
  return null;
}

const stepText = (s: NamesState | null, text: string) => {
  for (const c of text) if (!(s = s && stepNames(s, c))) return null;
  return s;
};

/**
 * A five-kind model's outline answer kept to its form, "`A` `B`" or "nothing": the state holds no file text, so
 * the names themselves are the model's, but only names. Each allowed set is the vocabulary filtered through the
 * form from one state, computed once per state (a dozen of them) and tokenizer.
 */
function namesConstraint(tok: Pick<TextTokenizer, 'decode'>, end: number, vocabSize: number): NonNullable<GenerateOptions['allowedNext']> {
  const texts = tokenTexts(tok, vocabSize);
  const memo = cacheOf(tok).namesAllowed;
  return (generated) => {
    let s: NamesState | null = { at: 'start', names: 0 };
    let text = '';
    for (let i = 0; i < generated.length; i++) {
      if (generated[i] === end) return i === generated.length - 1 && (s.at === 'closed' || s.at === 'nothing7') ? [] : null;
      if (!(s = stepText(s, texts[generated[i]] || '\0'))) return null;
      text += texts[generated[i]];
    }
    // The names left matter only near the cap: a token closes at most a few names.
    const key = `${s.at}:${Math.min(MAX_LISTED_DEFINITIONS - s.names, 8)}`;
    let allowed = memo.get(key);
    if (!allowed) {
      const from = s;
      allowed = [];
      texts.forEach((t, id) => {
        if (t && id !== end && stepText(from, t)) allowed!.push(id);
      });
      if (s.at === 'closed' || s.at === 'nothing7') allowed.push(end);
      memo.set(key, allowed);
    }
    // Each name once (a small model otherwise loops over a file's names): a token that would close a name
    // already listed is left out.
    if (!s.names && !s.at.startsWith('name')) return allowed;
    const listed = new Set<string>(text.match(/`[^`]+`/g) ?? []);
    const open = s.at.startsWith('name') ? text.slice(text.lastIndexOf('`')) : '';
    return allowed.filter((id) => {
      const t = texts[id];
      if (!t || !t.includes('`')) return true;
      const closed: string[] = (open + t).match(/`[^`]+`/g) ?? [];
      return closed.every((name, i) => !listed.has(name) && closed.indexOf(name) === i);
    });
  };
}

/** A form checked on the answer's text so far: 'bad' off it, 'done' when the answer may end here, else 'open'. */
type TextForm = (text: string) => 'open' | 'done' | 'bad';

/**
 * Tokens kept to a form of the whole answer text (TextForm): a token is allowed when the text with it is still on
 * the form, the end when the text so far is complete. Each step filters the vocabulary once (cheap next to a
 * forward pass; answers are a few dozen tokens).
 */
function formConstraint(tok: Pick<TextTokenizer, 'decode'>, end: number, vocabSize: number, form: TextForm): NonNullable<GenerateOptions['allowedNext']> {
  const texts = tokenTexts(tok, vocabSize);
  return (generated) => {
    let text = '';
    for (let i = 0; i < generated.length; i++) {
      if (generated[i] === end) return i === generated.length - 1 && form(text) === 'done' ? [] : null;
      text += texts[generated[i]] || '\0';
    }
    if (form(text) === 'bad') return null;
    const allowed: number[] = [];
    texts.forEach((t, id) => {
      if (t && id !== end && form(text + t) !== 'bad') allowed.push(id);
    });
    if (form(text) === 'done') allowed.push(end);
    return allowed;
  };
}

/** Longest signature or first sentence an answer holds (symbols.ts cuts both to 200 characters). */
const MAX_ANSWER_TEXT = 200;

/** " `SIG`": SIG starts with the name asked about and holds no backtick or line break. */
export function signatureForm(name: string): TextForm {
  const head = ` \`${name}`;
  return (text) => {
    if (text.length <= head.length) return head.startsWith(text) ? 'open' : 'bad';
    if (!text.startsWith(head)) return 'bad';
    const body = text.slice(head.length);
    const close = body.indexOf('`');
    if (body.includes('\n') || head.length - 2 + (close < 0 ? body.length : close) > MAX_ANSWER_TEXT) return 'bad';
    if (close < 0) return 'open';
    return close === body.length - 1 ? 'done' : 'bad';
  };
}

/** " SENTENCE (`path`)" (or " no docstring (`path`)"): one line of text, then a workspace path in "(`...`)". */
export function summaryForm(paths: Iterable<string>): TextForm {
  const tails = [...new Set([...paths].map((p) => `${p}\`)`))].sort();
  const prefixOfTail = (s: string): 'open' | 'done' | 'bad' => {
    // the first tail >= s starts with s if any does (sorted)
    let lo = 0;
    let hi = tails.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (tails[mid] < s) lo = mid + 1;
      else hi = mid;
    }
    if (lo === tails.length || !tails[lo].startsWith(s)) return 'bad';
    return tails[lo] === s ? 'done' : 'open'; // a tail ends in "`)", so none continues another
  };
  return (text) => {
    if (text.length && text[0] !== ' ') return 'bad';
    const at = text.indexOf(' (`');
    if (at < 0) {
      if (text.includes('\n')) return 'bad';
      // past the longest sentence only the opening of the path may follow
      return text.length <= MAX_ANSWER_TEXT + 1 || ' (`'.startsWith(text.slice(MAX_ANSWER_TEXT + 1)) ? 'open' : 'bad';
    }
    if (at < 2) return 'bad'; // a sentence of at least one character
    return prefixOfTail(text.slice(at + 3));
  };
}

/**
 * The answer a path-answering model may give to `question`, token by token (GenerateOptions.allowedNext), or
 * undefined for free text. A definition-only model (today's bundled model) names one of the workspace's paths,
 * whatever the question. A five-kind model: definition, one path; usages, up to MAX_USAGES distinct paths or
 * "none"; outline, names in backticks or "nothing"; signature, "`SIG`" starting with the name asked about; summary,
 * one line of text then "(`path`)" naming a workspace file; a question of no kind, free.
 * `vocabSize` is the model's (the outline form is checked over its whole vocabulary).
 */
export function answerConstraint(
  tok: Pick<TextTokenizer, 'encode' | 'decode' | 'special'>,
  question: string,
  paths: Iterable<string>,
  vocabSize: number,
): GenerateOptions['allowedNext'] {
  const end = tok.special.eos;
  if (!tok.special.fileIndex || end === null) return undefined;
  if (!tok.special.questionKinds) return pathAnswerConstraint(tok, paths);
  switch (questionKind(question)?.kind) {
    case 'definition':
      return pathAnswerConstraint(tok, paths);
    case 'usages': {
      const root = pathTrie(tok, paths);
      return listConstraint(root, end, MAX_USAGES, tok.encode(' none'));
    }
    case 'outline':
      return vocabSize > 0 ? namesConstraint(tok, end, vocabSize) : undefined;
    case 'signature': {
      const k = questionKind(question)!;
      return vocabSize > 0 && k.exact ? formConstraint(tok, end, vocabSize, signatureForm(k.subject)) : undefined;
    }
    case 'summary': {
      const list = [...paths];
      return vocabSize > 0 && list.length ? formConstraint(tok, end, vocabSize, summaryForm(list)) : undefined;
    }
    default:
      return undefined;
  }
}

/** Runs `prompt` + generation on a fork of the model's state; the state is restored afterwards. */
export async function* onFork(model: LanguageModel, prompt: readonly number[], opts: GenerateOptions): AsyncGenerator<number> {
  const mark = await model.fork();
  try {
    yield* generateTokens(model, prompt, { ...opts, discardsState: true });
  } finally {
    await model.rollback(mark);
    mark.release();
  }
}

/**
 * Tokens an answer may have when the caller does not say: the chat's default (sidewinder.chat.maxAnswerTokens in
 * package.json and settings.ts) and the CLI's (`ask --max-new-tokens`).
 */
export const DEFAULT_ANSWER_TOKENS = 512;

/** The tokenizer an answer needs: TextTokenizer's encode/decode and special tokens, and its config (the chat template). */
export type AnswerTokenizer = Pick<TextTokenizer, 'encode' | 'decode' | 'special'> & { readonly config?: Record<string, unknown> };

export interface AnswerRequest {
  /** As the user typed it (canonicalised and trimmed here). */
  question: string;
  /** Paths of the files in the state (WorkspaceIngest.statePaths): a path-answering model names them (answerConstraint). */
  statePaths: Iterable<string>;
  /** Default DEFAULT_ANSWER_TOKENS. */
  maxNewTokens?: number;
  /** A path-answering model writes the path as it likes, not kept to the workspace's paths (CLI --free-answer). */
  freeAnswer?: boolean;
  signal?: AbortSignal;
}

/** Token ids that end an answer: the model's end-of-sequence ids, the tokenizer's end of text and file separator. */
export function answerStopIds(model: Pick<LanguageModel, 'config'>, tok: Pick<TextTokenizer, 'special'>): number[] {
  const ids = [...model.config.eosTokenIds, tok.special.eos, tok.special.fileSep];
  return [...new Set(ids.filter((x): x is number => x !== null))];
}

export interface Answer {
  /** The tokens fed after the workspace state: the question, framed for the model. */
  readonly prompt: readonly number[];
  /** How the answer is generated (greedy, stop ids, exact tail, the answer constraint, the token limit). */
  readonly options: Readonly<GenerateOptions> & { readonly stopIds: readonly number[] };
  /** Why tokens() ended; null until it has ended by itself (a caller that breaks out of it leaves it null). */
  stoppedBy: 'eos' | 'length' | 'cancelled' | null;
  /**
   * The answer's tokens, one at a time (a stop token ends it and is not yielded), generated on a fork of the
   * model's state that is rolled back afterwards, also when the caller stops early. Run it once.
   */
  tokens(): AsyncGenerator<number>;
}

/**
 * A question about the workspace the model's state holds, answered: the one way from a question to the model's
 * input. The chat (the engine server's `ask`) and the CLI's `ask` both come here, so for the same workspace
 * state, model and question they feed the model the same tokens and get the same answer.
 */
export function answerQuestion(model: LanguageModel, tok: AnswerTokenizer, req: AnswerRequest): Answer {
  const stopIds = answerStopIds(model, tok);
  const options: Answer['options'] = {
    maxNewTokens: req.maxNewTokens ?? DEFAULT_ANSWER_TOKENS,
    greedy: true,
    stopIds,
    signal: req.signal,
    exactTail: ASK_EXACT_TAIL,
    // A model that answers with paths names files of the workspace.
    allowedNext: req.freeAnswer ? undefined : answerConstraint(tok, req.question, req.statePaths, model.config.vocabSize),
  };
  const prompt = questionTokens(tok, req.question);
  const answer: Answer = {
    prompt,
    options,
    stoppedBy: null,
    async *tokens() {
      let stopped = false;
      for await (const id of onFork(model, prompt, options)) {
        if (stopIds.includes(id)) {
          stopped = true;
          break;
        }
        yield id;
      }
      answer.stoppedBy = stopped ? 'eos' : req.signal?.aborted ? 'cancelled' : 'length';
    },
  };
  return answer;
}
