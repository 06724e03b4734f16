// Chat templates: the workspace goes inside the first user turn (preamble before it, the rest of the turn and
// the assistant header after the question), rendered with @huggingface/jinja from tokenizer_config.json.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { questionTokens } from '../../src/engine/ask';
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
