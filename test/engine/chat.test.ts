// Chat templates: the workspace goes inside the first user turn (preamble before it, the rest of the turn and
// the assistant header after the question), rendered with @huggingface/jinja from tokenizer_config.json.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { canonicalQuestion, onFork, pathAnswerConstraint, questionNote, questionTokens } from '../../src/engine/ask';
import { chatFormat } from '../../src/engine/chat';
import { CpuModel } from '../../src/engine/cpu/model';
import { WorkspaceIngest } from '../../src/engine/ingest';
import { openModelFolder } from '../../src/engine/model';
import { frameFile, walkWorkspace } from '../../src/workspace';
import { FIXTURES, relError } from './helpers';

// Shaped like Granite 4.0's template (roles between <|start_of_role|> and <|end_of_role|>, an optional
// default system turn), shortened.
const TEMPLATE =
  "{%- if messages[0]['role'] == 'system' %}{%- set loop_messages = messages[1:] %}{{- '<|start_of_role|>system<|end_of_role|>' + messages[0]['content'] + '<|end_of_text|>\\n' }}" +
  "{%- else %}{%- set loop_messages = messages %}{{- '<|start_of_role|>system<|end_of_role|>You are a helpful assistant.<|end_of_text|>\\n' }}{%- endif %}" +
  "{%- for message in loop_messages %}{{- '<|start_of_role|>' + message['role'] + '<|end_of_role|>' + message['content'] + '<|end_of_text|>\\n' }}{%- endfor %}" +
  "{%- if add_generation_prompt %}{{- '<|start_of_role|>assistant<|end_of_role|>' }}{%- endif %}";

describe('chat templates', () => {
  test('the template is split around the user message', () => {
    const f = chatFormat({ chat_template: TEMPLATE, eos_token: '<|end_of_text|>' });
    assert.deepEqual(f, {
      preamble: '<|start_of_role|>system<|end_of_role|>You are a helpful assistant.<|end_of_text|>\n<|start_of_role|>user<|end_of_role|>',
      epilogue: '<|end_of_text|>\n<|start_of_role|>assistant<|end_of_role|>',
    });
    assert.equal(chatFormat({}), null);
    assert.equal(chatFormat({ chat_template: [{ name: 'default', template: TEMPLATE }] })?.epilogue, f!.epilogue);
    assert.throws(() => chatFormat({ chat_template: '{{ messages[0].content | lower }}' }), /verbatim/);
    assert.throws(() => chatFormat({ chat_template: '{% for %}' }), /could not be rendered/);
  });

  test('ask on a chat model: preamble + workspace + question equals the whole prompt in one pass', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-chat-model-'));
    for (const f of fs.readdirSync(path.join(FIXTURES, 'granite-dense-nope'))) fs.copyFileSync(path.join(FIXTURES, 'granite-dense-nope', f), path.join(dir, f));
    fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ eos_token: '<|endoftext|>', chat_template: TEMPLATE }));
    const folder = openModelFolder(dir);
    const tok = folder.tokenizer!;
    const ws = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-chat-ws-'));
    fs.writeFileSync(path.join(ws, 'a.py'), 'def alpha():\n    return 1\n');
    fs.writeFileSync(path.join(ws, 'b.py'), 'def beta():\n    return 2\n');
    const ingest = new WorkspaceIngest(CpuModel.load(folder), tok, { workspace: ws, cacheDir: null, modelId: 'chat', chunkTokens: 16 });
    await ingest.sync();
    const q = questionTokens(tok, 'Where is beta defined?');
    const got = await ingest.model.forward(q);

    const format = chatFormat(tok.config)!;
    const ids = tok.encode(format.preamble);
    for (const f of (await walkWorkspace(ws)).files) ids.push(...frameFile(f.path, fs.readFileSync(f.abs, 'utf8'), tok.special, (s) => tok.encode(s)));
    const want = await CpuModel.load(folder).forward([...ids, ...tok.encode(`\n\nQuestion: Where is beta defined?${format.epilogue}`)]);
    assert.ok(relError(got, want) < 1e-4, `${relError(got, want)}`);
  });
});

describe('answers kept to the workspace paths', () => {
  function pathModel(): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-path-model-'));
    for (const f of fs.readdirSync(path.join(FIXTURES, 'granite-dense-nope'))) fs.copyFileSync(path.join(FIXTURES, 'granite-dense-nope', f), path.join(dir, f));
    const config = { eos_token: '<|endoftext|>', sidewinder_file_footer: true, sidewinder_file_index: true };
    fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(config));
    return dir;
  }

  test('the constraint walks the paths token by token, then allows only the end; other models get none', () => {
    const tok = openModelFolder(pathModel()).tokenizer!;
    const eos = tok.special.eos!;
    const allowed = pathAnswerConstraint(tok, ['src/a.py', 'src/ab.py', 'lib/c.py'])!;
    const seq = (p: string) => [...tok.encode(` \`${p}\``), eos];
    const first = new Set([seq('src/a.py')[0], seq('lib/c.py')[0]]);
    assert.deepEqual(new Set(allowed([])), first);
    for (const p of ['src/a.py', 'src/ab.py', 'lib/c.py']) {
      const ids = seq(p);
      for (let i = 0; i < ids.length; i++) assert.ok(allowed(ids.slice(0, i))!.includes(ids[i]), `${p}: token ${i}`);
      assert.deepEqual(allowed(ids), [], 'nothing after the end');
    }
    assert.deepEqual(allowed(seq('lib/c.py').slice(0, -1)), [eos], 'a whole path: only the end');
    assert.equal(allowed([tok.encode('zzz')[0], 1, 2]), null, 'off every path: no constraint');
    assert.equal(pathAnswerConstraint(tok, []), undefined, 'no paths');
    // Tokens and the trie are cached per tokenizer: another path list gets its own trie, the same one again too.
    assert.deepEqual(pathAnswerConstraint(tok, ['lib/c.py'])!([]), [seq('lib/c.py')[0]]);
    assert.deepEqual(new Set(pathAnswerConstraint(tok, ['src/a.py', 'src/ab.py', 'lib/c.py'])!([])), first);
    const plain = openModelFolder(path.join(FIXTURES, 'granite-dense-nope')).tokenizer!;
    assert.equal(pathAnswerConstraint(plain, ['a.py']), undefined, 'a model not trained with the index answers freely');
  });

  test('a lookup question is put as the model was trained to read it: the name in backticks', () => {
    const tok = openModelFolder(pathModel()).tokenizer!;
    const want = 'Where is `completeAt` defined?';
    for (const q of ['where is completeAt defined', 'Where is `completeAt` defined?', "where's the function completeAt() declared?", '  WHERE IS completeAt IMPLEMENTED ?  ', 'Where is the class completeAt defined?']) {
      assert.equal(canonicalQuestion(tok, q), want, q);
    }
    assert.deepEqual(questionTokens(tok, 'where is completeAt defined'), questionTokens(tok, want));
    for (const q of ['What does completeAt do?', 'Where is completeAt called from?', 'where is a b defined']) assert.equal(canonicalQuestion(tok, q), q, 'other questions stay');
    const plain = openModelFolder(path.join(FIXTURES, 'granite-dense-nope')).tokenizer!;
    assert.equal(canonicalQuestion(plain, 'where is completeAt defined'), 'where is completeAt defined', 'other models read the question as typed');
    // Asked something else, a lookup-only model still names a file: the user is told so.
    assert.match(questionNote(tok, 'What does completeAt do?') ?? '', /answers "Where is NAME defined\?" .* chat model/);
    assert.equal(questionNote(tok, 'where is completeAt defined'), null);
    assert.equal(questionNote(plain, 'What does completeAt do?'), null, 'a chat model answers anything');
  });

  test('ask with the constraint names a file of the state, the best one by the model', async () => {
    const folder = openModelFolder(pathModel());
    const tok = folder.tokenizer!;
    const ws = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-path-ws-'));
    fs.mkdirSync(path.join(ws, 'lib'));
    fs.writeFileSync(path.join(ws, 'a.py'), 'def alpha():\n    return 1\n');
    fs.writeFileSync(path.join(ws, 'b.py'), 'def beta():\n    return 2\n');
    fs.writeFileSync(path.join(ws, 'lib', 'c.py'), 'def gamma():\n    return 3\n');
    const ingest = new WorkspaceIngest(CpuModel.load(folder), tok, { workspace: ws, cacheDir: null, modelId: 'paths', chunkTokens: 16 });
    await ingest.sync();
    assert.deepEqual(ingest.statePaths().sort(), ['a.py', 'b.py', 'lib/c.py']);
    const allowedNext = pathAnswerConstraint(tok, ingest.statePaths())!;
    const q = questionTokens(tok, 'Where is `beta` defined?');
    const eos = tok.special.eos!;
    const ids: number[] = [];
    for await (const id of onFork(ingest.model, q, { maxNewTokens: 64, greedy: true, stopIds: [eos], allowedNext })) ids.push(id);
    assert.equal(ids.at(-1), eos, 'the answer ends');
    assert.ok(['a.py', 'b.py', 'lib/c.py'].some((p) => tok.decode(ids.slice(0, -1)) === ` \`${p}\``), tok.decode(ids));
    // Its first token is the model's best among the paths' first tokens (greedy over the allowed set).
    const mark = await ingest.model.fork();
    const logits = await ingest.model.forward(q);
    await ingest.model.rollback(mark);
    mark.release();
    assert.equal(logits.length, folder.config.vocabSize, 'the last position\'s logits');
    const best = allowedNext([])!.reduce((a, b) => (logits[b] > logits[a] ? b : a));
    assert.equal(ids[0], best);
  });
});
