// The five question kinds on the engine side (src/engine/ask.ts): reading the kind from untidy questions, the
// canonical questions, the note to the user, and the answer constraints, with the bundled model's real tokenizer
// (models/default/tokenizer.json) under a five-kind tokenizer_config and under today's definition-only one.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import {
  answerConstraint,
  canonicalQuestion,
  kindQuestion,
  pathAnswerConstraint,
  questionKind,
  questionNote,
  questionTokens,
  type QuestionKindMatch,
} from '../../src/engine/ask';
import { rng } from '../../src/engine/sampling';
import { TextTokenizer } from '../../src/engine/tokenizer';
import type { QuestionKind } from '../../src/workspace';

const DEFAULT_MODEL = path.join(__dirname, '..', '..', 'models', 'default');

/** The bundled model's tokenizer under another tokenizer_config. */
function tokenizerWith(config: Record<string, unknown>): TextTokenizer {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-kinds-tok-'));
  fs.copyFileSync(path.join(DEFAULT_MODEL, 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ eos_token: '<|endoftext|>', ...config }));
  return TextTokenizer.load(dir);
}
const INDEX = { sidewinder_file_footer: true, sidewinder_file_index: true };
const fiveKinds = tokenizerWith({ ...INDEX, sidewinder_question_kinds: true });
const definitionOnly = tokenizerWith(INDEX);
const plain = tokenizerWith({});
const VOCAB = 16384; // models/default/config.json vocab_size

const exact = (kind: QuestionKind, subject: string): QuestionKindMatch => ({ kind, subject, exact: true });
const guessed = (kind: QuestionKind, subject: string): QuestionKindMatch => ({ kind, subject, exact: false });

describe('questionKind', () => {
  const cases: [string, QuestionKindMatch | null][] = [
    // usages
    ['where is foo used', exact('usages', 'foo')],
    ['Where is `foo` used?', exact('usages', 'foo')],
    ['who calls parse_args?', exact('usages', 'parse_args')],
    ['what uses Foo', exact('usages', 'Foo')],
    ['find references to bar', exact('usages', 'bar')],
    ['callers of baz', exact('usages', 'baz')],
    ['usages of x', exact('usages', 'x')],
    ["Where's readConfig called from?", exact('usages', 'readConfig')],
    ['which files use TokenCache', exact('usages', 'TokenCache')],
    ['where do we use load_config', exact('usages', 'load_config')],
    ['show me all the usages of `Runner`', exact('usages', 'Runner')],
    ['WHAT CALLS   fetchAll ??', exact('usages', 'fetchAll')],
    ['where is the function $emit() invoked in this project', exact('usages', '$emit')],
    // signature
    ['what are the params of foo', exact('signature', 'foo')],
    ['what are the parameters of `foo`?', exact('signature', 'foo')],
    ['What are the arguments of foo()', exact('signature', 'foo')],
    ['signature of foo', exact('signature', 'foo')],
    ['how do I call foo()', exact('signature', 'foo')],
    ['how to call parse_args', exact('signature', 'parse_args')],
    ['what does foo take', exact('signature', 'foo')],
    ['what arguments does fooBar take?', exact('signature', 'fooBar')],
    ["foo's signature", exact('signature', 'foo')],
    // summary
    ['what does foo do', exact('summary', 'foo')],
    ['What does `foo` do?', exact('summary', 'foo')],
    ['explain foo', exact('summary', 'foo')],
    ['describe the class Foo', exact('summary', 'Foo')],
    ['what is foo for', exact('summary', 'foo')],
    ["what\u2019s parse_args for?", exact('summary', 'parse_args')],
    ['tell me about TokenCache', exact('summary', 'TokenCache')],
    ['can you explain what load_config does', exact('summary', 'load_config')],
    ['how does detokenize work', exact('summary', 'detokenize')],
    // outline
    ['what is defined in src/a.py', exact('outline', 'src/a.py')],
    ["what's in lib/util.ts", exact('outline', 'lib/util.ts')],
    ['outline of a.py', exact('outline', 'a.py')],
    ['list the functions in x.py', exact('outline', 'x.py')],
    ['what functions are in x.py', exact('outline', 'x.py')],
    ['What is defined in `src/engine/ask.ts`?', exact('outline', 'src/engine/ask.ts')],
    ['which classes are defined in pkg/models.py', exact('outline', 'pkg/models.py')],
    ['what does ./src/cli.ts define', exact('outline', 'src/cli.ts')],
    ['show me the outline of src\\cli\\args.ts', exact('outline', 'src/cli/args.ts')],
    // definition
    ['where is foo defined', exact('definition', 'foo')],
    ['where is foo declared', exact('definition', 'foo')],
    ['Where is the function completeAt() implemented?', exact('definition', 'completeAt')],
    ["where's foo", exact('definition', 'foo')],
    ['find the definition of foo', exact('definition', 'foo')],
    ['where is foo', exact('definition', 'foo')],
    ['which file defines TokenCache', exact('definition', 'TokenCache')],
    ['in which file is load_config defined', exact('definition', 'load_config')],
    ['  WHERE IS `Foo` DEFINED in the codebase?  ', exact('definition', 'Foo')],
    ['where does parse_args live', exact('definition', 'parse_args')],
    ['locate readConfig', exact('definition', 'readConfig')],
    // guessed: a path asks for an outline, else the most code-like word for a summary
    ['src/engine/ask.ts', guessed('outline', 'src/engine/ask.ts')],
    ['is util.py any good?', guessed('outline', 'util.py')],
    ['how does the tokenizer cache work with TokenCache', guessed('summary', 'TokenCache')],
    ['fix the bug in parse_args() please', guessed('summary', 'parse_args')],
    ['why does Runner crash with `max_len` set', guessed('summary', 'max_len')],
    // nothing to go on
    ['hello', null],
    ['what is this', null],
    ['where is it used', null],
    ['thanks!', null],
    ['why is it slow', null],
    ['and/or', null],
    ['', null],
  ];
  for (const [q, want] of cases) test(JSON.stringify(q), () => assert.deepEqual(questionKind(q), want));
  test('at least 40 phrasings', () => assert.ok(cases.length >= 40));
});

describe('canonical questions', () => {
  test('the five forms, subjects in backticks', () => {
    assert.equal(kindQuestion('definition', 'foo'), 'Where is `foo` defined?');
    assert.equal(kindQuestion('usages', 'foo'), 'Where is `foo` used?');
    assert.equal(kindQuestion('signature', 'foo'), 'What are the parameters of `foo`?');
    assert.equal(kindQuestion('summary', 'foo'), 'What does `foo` do?');
    assert.equal(kindQuestion('outline', 'src/a.py'), 'What is defined in `src/a.py`?');
  });

  test('a five-kind model reads every kind canonically, guessed or not; a definition-only one only definitions', () => {
    assert.equal(canonicalQuestion(fiveKinds, 'who calls parse_args?'), 'Where is `parse_args` used?');
    assert.equal(canonicalQuestion(fiveKinds, "what's in lib/util.ts"), 'What is defined in `lib/util.ts`?');
    assert.equal(canonicalQuestion(fiveKinds, 'fix the bug in parse_args()'), 'What does `parse_args` do?', 'guessed');
    assert.equal(canonicalQuestion(fiveKinds, ' hello '), 'hello', 'no kind: as typed');
    assert.equal(canonicalQuestion(definitionOnly, "where's foo"), 'Where is `foo` defined?');
    assert.equal(canonicalQuestion(definitionOnly, 'who calls parse_args?'), 'who calls parse_args?');
    assert.equal(canonicalQuestion(plain, 'who calls parse_args?'), 'who calls parse_args?');
    assert.deepEqual(questionTokens(fiveKinds, 'how do I call foo()'), [fiveKinds.special.fileSep!, ...fiveKinds.encode('Question: What are the parameters of `foo`?\nAnswer:')]);
  });

  test('the tokenizer flag: question kinds only together with the file index', () => {
    assert.equal(fiveKinds.special.questionKinds, true);
    assert.equal(definitionOnly.special.questionKinds, false);
    assert.equal(tokenizerWith({ sidewinder_question_kinds: true }).special.questionKinds, false, 'no index, no kinds');
    assert.equal(TextTokenizer.load(DEFAULT_MODEL).special.questionKinds, true, 'the bundled model (run 11) answers the five kinds');
  });
});

describe('questionNote', () => {
  test('five kinds: a note for a guessed kind or none, null when exact', () => {
    assert.equal(questionNote(fiveKinds, 'where is foo used'), null);
    assert.equal(questionNote(fiveKinds, 'what is defined in src/a.py'), null);
    assert.equal(
      questionNote(fiveKinds, 'fix the bug in parse_args()'),
      'Answered as "What does `parse_args` do?" (the closest question this model answers). A downloaded chat model such as Granite 4.0-H answers freely (Sidewinder: Download Model).',
    );
    assert.match(questionNote(fiveKinds, 'src/engine/ask.ts')!, /^Answered as "What is defined in `src\/engine\/ask.ts`\?"/);
    assert.match(questionNote(fiveKinds, 'hello')!, /five kinds of question .* Granite 4.0-H/);
  });

  test('definition only: the lookup-only note for anything but a definition; other models none', () => {
    assert.equal(questionNote(definitionOnly, "where's foo"), null);
    assert.match(questionNote(definitionOnly, 'where is foo used')!, /answers "Where is NAME defined\?" .* chat model/);
    assert.equal(questionNote(plain, 'hello'), null);
  });
});

describe('answer constraints', () => {
  const eos = fiveKinds.special.eos!;
  const PATHS = ['src/a.py', 'src/ab.py', 'lib/c.py'];

  /** Every answer the constraint allows (depth-first over allowed tokens), decoded; the walk must end. */
  function allAnswers(allowed: NonNullable<ReturnType<typeof pathAnswerConstraint>>): Set<string> {
    const out = new Set<string>();
    const walk = (ids: number[]) => {
      assert.ok(ids.length < 80, 'an answer ends');
      const next = allowed(ids);
      assert.ok(next?.length, `on the constraint's own path, with somewhere to go: ${fiveKinds.decode(ids)}`);
      for (const id of next) {
        if (id === eos) {
          out.add(fiveKinds.decode(ids));
          assert.deepEqual(allowed([...ids, eos]), [], 'nothing after the end');
        } else walk([...ids, id]);
      }
    };
    walk([]);
    return out;
  }

  test('usages: up to 5 distinct workspace paths, space separated, or "none", tokenized as the training answer', () => {
    const allowed = answerConstraint(fiveKinds, 'who calls parse_args', PATHS, VOCAB)!;
    const want = new Set([' none']);
    const lists = (rest: string[], acc: string[]): void => {
      if (acc.length) want.add(' ' + acc.map((p) => `\`${p}\``).join(' '));
      for (const p of rest) lists(rest.filter((q) => q !== p), [...acc, p]);
    };
    lists(PATHS, []);
    assert.deepEqual(allAnswers(allowed), want, 'every ordering of every non-empty subset, and none');
    // The tokens of a whole answer are the training answer's: encode(' ' + A) for A = "`p1` `p2`".
    const answer = fiveKinds.encode(' `lib/c.py` `src/a.py`');
    for (let i = 0; i < answer.length; i++) assert.ok(allowed(answer.slice(0, i))!.includes(answer[i]), `token ${i}`);
    assert.ok(allowed(answer)!.includes(eos));
    assert.equal(allowed(fiveKinds.encode(' `nope.py`')), null, 'off every path: no constraint');
  });

  test('usages: at most 5 of many paths, never one twice (random walks)', () => {
    const paths = Array.from({ length: 9 }, (_, i) => `pkg/mod${i}/file${i % 3}.py`);
    const allowed = answerConstraint(fiveKinds, 'where is foo used', paths, VOCAB)!;
    const random = rng(7);
    for (let walk = 0; walk < 60; walk++) {
      const ids: number[] = [];
      for (;;) {
        const next = allowed(ids)!;
        // Lean towards going on, to reach the cap.
        const go = next.filter((id) => id !== eos);
        const id = go.length && random() < 0.9 ? go[Math.floor(random() * go.length)] : next[Math.floor(random() * next.length)];
        if (id === eos) break;
        ids.push(id);
      }
      const text = fiveKinds.decode(ids);
      if (text === ' none') continue;
      const listed = [...text.matchAll(/ `([^`]+)`/g)].map((m) => m[1]);
      assert.equal(listed.map((p) => ` \`${p}\``).join(''), text, text);
      assert.ok(listed.length >= 1 && listed.length <= 5, text);
      assert.equal(new Set(listed).size, listed.length, `distinct: ${text}`);
      for (const p of listed) assert.ok(paths.includes(p), p);
    }
  });

  test('definition: one path, as for a definition-only model asked anything', () => {
    const one = allAnswers(answerConstraint(fiveKinds, 'where is foo', PATHS, VOCAB)!);
    assert.deepEqual(one, new Set(PATHS.map((p) => ` \`${p}\``)));
    assert.deepEqual(allAnswers(answerConstraint(definitionOnly, 'who calls foo', PATHS, VOCAB)!), one, "today's behaviour");
    assert.deepEqual(allAnswers(pathAnswerConstraint(fiveKinds, PATHS)!), one);
  });

  test('outline: backticked names of 4+ characters, space separated, at most 48, or "nothing"', () => {
    const allowed = answerConstraint(fiveKinds, 'what is defined in src/a.py', PATHS, VOCAB)!;
    const spelled = (text: string) => {
      const ids = fiveKinds.encode(text);
      ids.forEach((id, i) => assert.ok(allowed(ids.slice(0, i))!.includes(id), `${text}: token ${i}`));
      assert.ok(allowed(ids)!.includes(eos), `${text}: then the end`);
    };
    spelled(' `parse_args` `Runner` `$emit` `__init__`');
    spelled(' nothing');
    const first = allowed([])!;
    for (const bad of [' foo', ' none', 'foo', '`']) assert.ok(!first.includes(fiveKinds.encode(bad)[0]), bad);
    assert.ok(!first.includes(eos), 'not empty');
    const after = (text: string) => allowed(fiveKinds.encode(text))!;
    const tick = fiveKinds.encode('`')[0];
    assert.ok(!after(' `abc').includes(tick), '3 characters are no name');
    assert.ok(!after(' `parse_args').includes(eos), 'a name is closed before the end');
    assert.deepEqual(after(' nothing'), [eos]);
    assert.equal(allowed(fiveKinds.encode(' `parse args`')), null, 'off the form: no constraint');
    const twice = fiveKinds.encode(' `parse_args` `Runner` `parse_args`');
    assert.ok(!allowed(twice.slice(0, -1))!.includes(twice[twice.length - 1]), 'a name listed once');
    const other = fiveKinds.encode(' `parse_args` `Runner` `parse_argv`');
    assert.ok(allowed(other.slice(0, -1))!.includes(other[other.length - 1]), 'other names go on');
    const names = Array.from({ length: 48 }, (_, i) => `name${i}`);
    const full = after(' ' + names.map((n) => `\`${n}\``).join(' '));
    assert.ok(full.includes(eos) && full.every((id) => id === eos || !fiveKinds.decode([id]).startsWith(' ')), '48 names: only the end');
    // Random walks spell the form, or a beginning of it when cut at 40 tokens.
    const random = rng(3);
    for (let walk = 0; walk < 40; walk++) {
      const ids: number[] = [];
      let ended = false;
      while (ids.length < 40 && !ended) {
        const next = allowed(ids)!;
        const id = next.includes(eos) && random() < 0.3 ? eos : next[Math.floor(random() * next.length)];
        if (id === eos) ended = true;
        else ids.push(id);
      }
      const text = fiveKinds.decode(ids);
      if (ended) assert.match(text, /^(?:(?: `[A-Za-z_$][\w$]{3,}`)+| nothing)$/);
      else assert.ok(/^ (?:`[A-Za-z_$][\w$]{3,}` )*(?:`(?:[A-Za-z_$][\w$]*`?)?)?$/.test(text) || ' nothing'.startsWith(text), text);
    }
  });

  test('signature: "`SIG`" that starts with the name asked about, one line, then the end', () => {
    const allowed = answerConstraint(fiveKinds, 'what does parse_args take', PATHS, VOCAB)!;
    const spelled = (text: string) => {
      const ids = fiveKinds.encode(text);
      ids.forEach((id, i) => assert.ok(allowed(ids.slice(0, i))!.includes(id), `${text}: token ${i}`));
      assert.deepEqual(allowed(ids), [eos], `${text}: then only the end`);
    };
    spelled(' `parse_args(argv: list[str], *, strict=True) -> Namespace`');
    spelled(' `parse_args`');
    const after = (text: string) => allowed(fiveKinds.encode(text))!;
    assert.ok(!allowed([])!.includes(eos), 'not empty');
    for (const bad of [' `parse_arguments(', ' `foo(', ' parse_args']) assert.equal(allowed(fiveKinds.encode(bad)), null, `${bad}: off the form`);
    assert.ok(!after(' `parse_args(a').includes(eos), 'closed before the end');
    assert.ok(after(' `parse_args(a').every((id) => !fiveKinds.decode([id]).includes('\n')), 'one line');
    assert.equal(allowed(fiveKinds.encode(' `parse_args(' + 'a'.repeat(200))), null, 'at most 200 characters');
    // Random walks spell the form or a beginning of it.
    const random = rng(5);
    for (let walk = 0; walk < 20; walk++) {
      const ids: number[] = [];
      let ended = false;
      while (ids.length < 24 && !ended) {
        const next = allowed(ids)!;
        const id = next.includes(eos) ? eos : next[Math.floor(random() * next.length)];
        if (id === eos) ended = true;
        else ids.push(id);
      }
      const text = fiveKinds.decode(ids);
      if (ended) assert.match(text, /^ `parse_args[^`\n]*`$/);
      else assert.ok(text.startsWith(' `parse_args') ? !/[\n]/.test(text) && !text.slice(1).includes('`', 1) : ' `parse_args'.startsWith(text), text);
    }
  });

  test('summary: one line of text, then "(`path`)" naming a workspace file, then the end', () => {
    const allowed = answerConstraint(fiveKinds, 'what does parse_args do', PATHS, VOCAB)!;
    const spelled = (text: string) => {
      const ids = fiveKinds.encode(text);
      ids.forEach((id, i) => assert.ok(allowed(ids.slice(0, i))!.includes(id), `${text}: token ${i}`));
      assert.deepEqual(allowed(ids), [eos], `${text}: then only the end`);
    };
    spelled(` Parse the command line (flags first). (\`${PATHS[0]}\`)`);
    spelled(` no docstring (\`${PATHS[1]}\`)`);
    const after = (text: string) => allowed(fiveKinds.encode(text))!;
    assert.ok(!allowed([])!.includes(eos), 'not empty');
    assert.ok(!after(' Parse the command line.').includes(eos), 'the path comes before the end');
    assert.ok(after(' Parse the command line.').every((id) => !fiveKinds.decode([id]).includes('\n')), 'one line');
    assert.equal(allowed(fiveKinds.encode(' Parses. (`nope.py`)')), null, 'only workspace paths');
    assert.equal(allowed(fiveKinds.encode(' ' + 'x'.repeat(230))), null, 'a sentence of at most 200 characters');
    // From " (`" on, random walks end on a workspace path.
    const random = rng(11);
    for (let walk = 0; walk < 20; walk++) {
      const ids = fiveKinds.encode(' Parses. (`');
      for (;;) {
        const next = allowed(ids)!;
        const id = next[Math.floor(random() * next.length)];
        if (id === eos) break;
        ids.push(id);
      }
      const m = /^ Parses\. \(`(.+)`\)$/.exec(fiveKinds.decode(ids));
      assert.ok(m && PATHS.includes(m[1]), fiveKinds.decode(ids));
    }
  });

  test('questions of no kind answer freely; other models too', () => {
    assert.equal(answerConstraint(fiveKinds, 'hello', PATHS, VOCAB), undefined);
    assert.equal(answerConstraint(plain, 'where is foo', PATHS, VOCAB), undefined);
    assert.equal(answerConstraint(fiveKinds, 'what does foo do', [], VOCAB), undefined, 'a summary with no workspace path');
  });
});
