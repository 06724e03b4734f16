// Every failure the engine reports, one class each, with a message that says how to fix it.

export class SidewinderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** A model folder is missing a file, or a file in it is not what it claims to be. */
export class ModelFormatError extends SidewinderError {}

/** config.json describes something the engine does not run (architecture, option, inconsistent sizes). */
export class UnsupportedModelError extends SidewinderError {}

/** config.json's model_type (or architectures) names no implementation the engine has, or is missing. */
export class UnknownModelTypeError extends UnsupportedModelError {
  constructor(
    message: string,
    readonly modelType: unknown,
    readonly supported: readonly string[],
  ) {
    super(message);
  }
}

/** A supported model type with a setting whose value changes the computation in a way the engine does not implement. */
export class UnsupportedConfigValueError extends UnsupportedModelError {
  constructor(
    readonly field: string,
    readonly value: unknown,
    supported: string,
    modelType: string,
    /** How the message names the setting; default `field = value`. */
    subject = `${field} = ${JSON.stringify(value) ?? String(value)}`,
  ) {
    super(
      `config.json: ${subject} is not supported for model_type ${JSON.stringify(modelType)}; ` +
        `Sidewinder implements ${supported}. Convert the checkpoint or pick another one.`,
    );
  }
}

/** No WebGPU adapter could be found (no Vulkan driver, or none that Dawn accepts). */
export class WebGPUNotAvailableError extends SidewinderError {
  constructor(detail: string) {
    super(
      `No WebGPU adapter is available (${detail}). Install a Vulkan driver: on a Linux machine without a GPU, ` +
        `Mesa's lavapipe (apt-get install -t bookworm-backports mesa-vulkan-drivers), or use --backend cpu.`,
    );
  }
}

/** The GPU device was lost (driver reset, out of memory, machine suspended). State must be rebuilt. */
export class DeviceLostError extends SidewinderError {
  constructor(reason: string) {
    super(`The GPU device was lost (${reason}). The engine must be restarted; saved state is kept.`);
  }
}

/** A GPU step failed validation or ran out of memory; the message names the step. */
export class GpuError extends SidewinderError {}

/** Bad command-line usage. */
export class UsageError extends SidewinderError {}

/** No model was given and the bundled one (models/default in the package) is not there. */
export class BundledModelMissingError extends SidewinderError {
  constructor(dir: string) {
    super(
      `no --model was given and the bundled model is missing (${dir} has no config.json). Pass --model DIR, a ` +
        `Hugging Face model folder, or fetch one with \`node dist/cli.js download REPO_ID\` and pass the folder it prints.`,
    );
  }
}
