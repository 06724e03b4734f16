// Fuzzing chat templates (chatFormat: tokenizer_config.json's chat_template rendered with @huggingface/jinja):
// templates generated from Jinja fragments (loops, ranges up to 10^9, nested loops, filters with huge
// arguments, macros, raise_exception, syntax errors), cuts and inserts in a Granite-shaped template, raw
// text, and odd chat_template / bos_token / eos_token values. Each input ends in a format (or null: no
// template) or a ModelFormatError, quickly: a template must not hang the engine or exhaust its memory.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chatFormat } from '../../src/engine/chat';
import { ModelFormatError } from '../../src/engine/errors';
import { check, corpus, fc, named, oddJson } from './fuzz';

const TARGET = 'chatTemplate';

interface Case {
  name: string;
  /** tokenizer_config.json's contents */
  config: Record<string, unknown>;
}

const { cases, templates } = corpus<Case>(TARGET) as ReturnType<typeof corpus<Case>> & { templates: string[] };

function format(cfg: Record<string, unknown> | undefined): void {
  const out = named(() => {
    const f = chatFormat(cfg);
    if (f !== null) assert.ok(typeof f.preamble === 'string' && typeof f.epilogue === 'string');
    return f;
  });
  if (!out.ok) assert.ok(out.error instanceof ModelFormatError, `${out.error.name}: ${out.error.message}`);
}

const bigNumber = fc.constantFrom('0', '1', '3', '-1', '100000', '1000000000', '10**10', '2**62', '1e300', "'x'", 'none', '0.5');
const expr = fc.oneof(
  fc.constantFrom(
    "messages[0]['content']",
    'messages[0].content',
    'messages[0].role',
    'messages[5]',
    'messages[-1].content',
    'messages | length',
    'bos_token',
    'eos_token',
    'add_generation_prompt',
    'tools',
    'documents',
    'none.x',
    "'<|start_of_role|>'",
    "messages[0]['content'][::-1]",
    "messages[0]['content'] | upper",
    "messages[0]['content'] | trim",
    "messages | tojson",
    "strftime_now('%Y-%m-%d')",
    "raise_exception('unsupported role')",
    'loop.index',
    'ns.x',
    'x',
    '10 ** 400',
    '1 / 0',
    '1 // 0',
    "'a' ~ 'b'",
    'range(3) | join(",")',
  ),
  bigNumber.map((n) => `messages[0]['content'] | indent(${n})`),
  bigNumber.map((n) => `messages | tojson(indent=${n})`),
  bigNumber.map((n) => `range(${n}) | length`),
  bigNumber.map((n) => `'ab' * ${n}`),
);

/** A template from Jinja fragments, nested a few levels. */
const template: fc.Arbitrary<string> = fc.letrec<{ t: string; frag: string }>((tie) => ({
  t: fc.array(tie('frag'), { maxLength: 6 }).map((fs) => fs.join('')),
  frag: fc.oneof(
    { maxDepth: 3, depthSize: 'small', withCrossShrink: true },
    fc.constantFrom('<|start_of_role|>user<|end_of_role|>', '\n', 'text ', '{{', '}}', '{%', '%}', '{#', '#}', '{% endfor %}', '{% endif %}', '{%- else %}'),
    expr.map((e) => `{{ ${e} }}`),
    expr.map((e) => `{{- ${e} -}}`),
    fc.tuple(expr, tie('t')).map(([e, body]) => `{% if ${e} %}${body}{% else %}${body}{% endif %}`),
    tie('t').map((body) => `{% for message in messages %}${body}{% endfor %}`),
    fc.tuple(bigNumber, tie('t')).map(([n, body]) => `{% for i in range(${n}) %}${body}{% endfor %}`),
    fc.tuple(bigNumber, bigNumber, tie('t')).map(([a, b, body]) => `{% for i in range(${a}) %}{% for j in range(${b}) %}${body}{% endfor %}{% endfor %}`),
    fc.tuple(expr).map(([e]) => `{% set x = ${e} %}`),
    fc.tuple(expr).map(([e]) => `{% set ns = namespace(x=${e}) %}{% set ns.x = ns.x ~ ns.x %}`),
    tie('t').map((body) => `{% macro m(a) %}${body}{% endmacro %}{{ m(1) }}`),
    tie('t').map((body) => `{% filter upper %}${body}{% endfilter %}`),
  ),
})).t;

/** Cuts and inserts in a real-looking template. */
const mutatedTemplate = fc
  .record({
    which: fc.nat(),
    at: fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }),
    cut: fc.nat({ max: 20 }),
    insert: fc.oneof(fc.constantFrom('', '{%', '%}', '{{', '}}', '{% for i in range(1000000000) %}', '{% endfor %}', "'", '"', '[', ']', '|', 'none', '.content'), expr.map((e) => `{{ ${e} }}`)),
  })
  .map(({ which, at, cut, insert }) => {
    const t = templates[which % templates.length];
    const p = Math.floor(at * t.length);
    return t.slice(0, p) + insert + t.slice(p + cut);
  });

describe('fuzz: chat templates', () => {
  test('committed cases', () => {
    for (const c of cases) assert.doesNotThrow(() => format(c.config), c.name);
    for (const t of templates) assert.ok(chatFormat({ chat_template: t }), 'the committed templates render');
  });

  test('generated templates', () => {
    check(
      TARGET,
      'generated',
      600,
      fc.property(template, (t) => format({ chat_template: t, eos_token: '<|end_of_text|>' })),
    );
  });

  test('mutations of a real template', () => {
    check(
      TARGET,
      'mutated',
      500,
      fc.property(mutatedTemplate, (t) => format({ chat_template: t })),
    );
  });

  test('raw text and odd tokenizer_config.json values', () => {
    check(
      TARGET,
      'raw',
      500,
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 80 }).map((t) => ({ chat_template: t })),
          fc.array(fc.constantFrom('{{', '}}', '{%', '%}', 'for', 'in', 'if', 'endfor', 'endif', 'messages', '(', ')', '[', ']', "'", 'x', '|', ' '), { maxLength: 30 }).map((a) => ({ chat_template: a.join('') })),
          fc.record({ chat_template: oddJson(), bos_token: oddJson(), eos_token: oddJson() }, { requiredKeys: [] }),
          fc.record({ chat_template: fc.array(fc.record({ name: fc.oneof(fc.constant('default'), oddJson()), template: fc.oneof(template, oddJson()) }, { requiredKeys: [] }), { maxLength: 3 }) }),
          fc.record({ chat_template: fc.constantFrom(...templates), bos_token: oddJson(), eos_token: fc.oneof(oddJson(), fc.record({ content: oddJson() })) }),
        ),
        (cfg) => format(cfg as Record<string, unknown>),
      ),
    );
  });
});
