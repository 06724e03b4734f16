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
    let config: Record<string, unknown> = {};
    const cfgFile = path.join(dir, 'tokenizer_config.json');
    if (fs.existsSync(cfgFile)) {
      try {
        config = JSON.parse(fs.readFileSync(cfgFile, 'utf8'));
      } catch (e) {
        throw new ModelFormatError(`tokenizer_config.json is not valid JSON (${(e as Error).message}).`);
      }
    }
    try {
      return new TextTokenizer(new Tokenizer(json as object, config), config);
    } catch (e) {
      throw new ModelFormatError(`tokenizer.json could not be loaded: ${(e as Error).message}`);
    }
  }

  encode(text: string, addSpecialTokens = false): number[] {
    return this.tok.encode(text, { add_special_tokens: addSpecialTokens }).ids;
  }

  decode(ids: readonly number[], skipSpecialTokens = true): string {
    return this.tok.decode([...ids], { skip_special_tokens: skipSpecialTokens, clean_up_tokenization_spaces: false });
  }

  tokenId(token: string): number | null {
    return this.tok.token_to_id(token) ?? null;
  }
}
