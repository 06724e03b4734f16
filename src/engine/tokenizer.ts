// The model's tokenizer: tokenizer.json (+ tokenizer_config.json when present) through @huggingface/tokenizers.
// Also finds the special tokens the product relies on (end of text, FIM, file separator).

import * as fs from 'fs';
import * as path from 'path';
import { Tokenizer } from '@huggingface/tokenizers';
import { ModelFormatError } from './errors';

export interface SpecialTokens {
  eos: number | null;
  fimPrefix: number | null;
  fimMiddle: number | null;
  fimSuffix: number | null;
  fimPad: number | null;
  fileSep: number | null;
  fileName: number | null;
  /** Files are framed with the path after the file too (tokenizer_config.json "sidewinder_file_footer"). */
  fileFooter: boolean;
  /** The footer also lists the names the file defines (tokenizer_config.json "sidewinder_file_defs"). */
  fileDefs: boolean;
  /** The footer indexes them instead, one `NAME` `path` line each (tokenizer_config.json "sidewinder_file_index"). */
  fileIndex: boolean;
  /**
   * With the index, the model answers five kinds of question (where a name is defined and used, its parameters, what
   * it does, what a file defines; engine/ask.ts) rather than definitions only (tokenizer_config.json
   * "sidewinder_question_kinds").
   */
  questionKinds: boolean;
}

/**
 * Token ids in tokenizer.json must be non-negative integers: @huggingface/tokenizers takes any JSON value as an
 * id (null, 0.5, "3") and encode would then hand it to the model.
 */
function checkIds(json: { model: unknown; added_tokens?: unknown }): void {
  const isId = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
  const vocab = typeof json.model === 'object' && json.model !== null ? (json.model as { vocab?: unknown }).vocab : undefined;
  // BPE, WordPiece and WordLevel map token -> id; Unigram lists [piece, score] pairs (ids are positions).
  if (typeof vocab === 'object' && vocab !== null && !Array.isArray(vocab)) {
    for (const [t, id] of Object.entries(vocab)) {
      if (!isId(id)) throw new ModelFormatError(`tokenizer.json: token ${JSON.stringify(t)} has id ${JSON.stringify(id)}, not a token id; the file is corrupt.`);
    }
  }
  if (json.added_tokens !== undefined && json.added_tokens !== null) {
    if (!Array.isArray(json.added_tokens)) throw new ModelFormatError('tokenizer.json: "added_tokens" must be a list.');
    for (const a of json.added_tokens as unknown[]) {
      const t = a as { id?: unknown; content?: unknown } | null;
      if (typeof t !== 'object' || t === null || !isId(t.id) || typeof t.content !== 'string') {
        throw new ModelFormatError(`tokenizer.json: added token ${JSON.stringify(a)?.slice(0, 80)} needs an integer "id" and a string "content".`);
      }
    }
  }
}

export class TextTokenizer {
  readonly special: SpecialTokens;

  private constructor(private readonly tok: Tokenizer, readonly config: Record<string, unknown>) {
    const find = (...names: string[]) => {
      for (const n of names) {
        const id = tok.token_to_id(n);
        if (id !== undefined) return id;
      }
      return null;
    };
    const eosName = typeof config['eos_token'] === 'string' ? (config['eos_token'] as string) : undefined;
    this.special = {
      eos: find(...(eosName ? [eosName] : []), '<|endoftext|>', '<|end_of_text|>', '</s>'),
      fimPrefix: find('<fim_prefix>', '<|fim_prefix|>'),
      fimMiddle: find('<fim_middle>', '<|fim_middle|>'),
      fimSuffix: find('<fim_suffix>', '<|fim_suffix|>'),
      fimPad: find('<fim_pad>', '<|fim_pad|>'),
      fileSep: find('<file_sep>', '<|file_sep|>'),
      fileName: find('<filename>', '<|filename|>'),
      fileFooter: config['sidewinder_file_footer'] === true,
      fileDefs: config['sidewinder_file_footer'] === true && config['sidewinder_file_defs'] === true,
      fileIndex: config['sidewinder_file_footer'] === true && config['sidewinder_file_index'] === true,
      questionKinds: config['sidewinder_file_footer'] === true && config['sidewinder_file_index'] === true && config['sidewinder_question_kinds'] === true,
    };
  }

  /** Loads tokenizer.json (required) and tokenizer_config.json (optional) from a model folder. */
  static load(dir: string): TextTokenizer {
    const file = path.join(dir, 'tokenizer.json');
    if (!fs.existsSync(file)) throw new ModelFormatError(`${dir} has no tokenizer.json; the model folder is incomplete.`);
    let json: unknown;
    try {
      json = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch (e) {
      throw new ModelFormatError(`tokenizer.json is not valid JSON (${(e as Error).message}); download it again.`);
    }
    if (typeof json !== 'object' || json === null || !('model' in json)) {
      throw new ModelFormatError('tokenizer.json has no "model" section; it is not a Hugging Face tokenizer file.');
    }
    checkIds(json as { model: unknown; added_tokens?: unknown });
    let config: Record<string, unknown> = {};
    const cfgFile = path.join(dir, 'tokenizer_config.json');
    if (fs.existsSync(cfgFile)) {
      try {
        config = JSON.parse(fs.readFileSync(cfgFile, 'utf8'));
      } catch (e) {
        throw new ModelFormatError(`tokenizer_config.json is not valid JSON (${(e as Error).message}).`);
      }
      if (typeof config !== 'object' || config === null || Array.isArray(config)) {
        throw new ModelFormatError('tokenizer_config.json must hold a JSON object.');
      }
    }
    try {
      return new TextTokenizer(new Tokenizer(json as object, config), config);
    } catch (e) {
      throw new ModelFormatError(`tokenizer.json could not be loaded: ${(e as Error).message}`);
    }
  }

  encode(text: string, addSpecialTokens = false): number[] {
    const ids = this.tok.encode(text, { add_special_tokens: addSpecialTokens }).ids;
    // A model without a usable unk_token (say WordPiece without one) yields undefined for what it cannot map.
    for (const id of ids) {
      if (!Number.isInteger(id)) {
        throw new ModelFormatError(`tokenizer.json has no token for part of ${JSON.stringify(text.slice(0, 40))} (and no usable unk_token); the tokenizer is broken.`);
      }
    }
    return ids;
  }

  decode(ids: readonly number[], skipSpecialTokens = true): string {
    // @huggingface/tokenizers throws on an empty list; no tokens decode to no text.
    if (ids.length === 0) return '';
    return this.tok.decode([...ids], { skip_special_tokens: skipSpecialTokens, clean_up_tokenization_spaces: false });
  }

  tokenId(token: string): number | null {
    return this.tok.token_to_id(token) ?? null;
  }
}
