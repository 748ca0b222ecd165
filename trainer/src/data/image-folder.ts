/**
 * The `image-folder` reader (torchvision's ImageFolder, Keras's
 * image_dataset_from_directory): one sub-folder per class of PNG/JPEG files,
 * decoded with pngjs and jpeg-js (maintained, pure JavaScript, CommonJS, no
 * native build), resized to the configured size with a bilinear filter
 * written here (half-pixel centres, as tf.image.resize: a few lines, where a
 * resizing package would bring a native image library), as 1 channel when
 * every image is grayscale, else 3 (RGB; alpha is dropped). Pixel values stay
 * 0-255: the loader standardizes them per channel.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { decode as decodeJpeg } from 'jpeg-js';
import { PNG } from 'pngjs';
import { TrainerError } from '../contract';

const IMAGE_EXTENSIONS = /\.(png|jpe?g)$/i;

function datasetError(message: string, cause?: unknown): TrainerError {
  return new TrainerError('TRAINER_ERR_DATASET', message, cause === undefined ? undefined : { cause });
}

/** Images resized to one size, 3 channels each, and whether all of them were grayscale. */
export interface DecodedImages {
  readonly count: number;
  readonly height: number;
  readonly width: number;
  /** count x height x width x 3 floats (RGB, 0-255). */
  readonly rgb: Float32Array;
  readonly grayscale: boolean;
}

/** A class folder: its name and its image files (sorted). */
export interface ClassFolder {
  readonly className: string;
  readonly files: readonly string[];
}

async function listDir(dir: string): Promise<import('node:fs').Dirent[]> {
  try {
    return await readdir(dir, { withFileTypes: true });
  } catch (err) {
    throw datasetError(`cannot read dataset folder ${dir}: ${(err as Error).message}`, err);
  }
}

function byName(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Whether `root` holds both train/ and test/ sub-folders (each then a folder of class folders). */
export async function hasTrainTestFolders(root: string): Promise<boolean> {
  const dirs = new Set((await listDir(root)).filter((e) => e.isDirectory()).map((e) => e.name));
  return dirs.has('train') && dirs.has('test');
}

/** The class folders of `root`, sorted by name; an empty root or class folder is an error. */
export async function classFolders(root: string): Promise<ClassFolder[]> {
  const dirs = (await listDir(root))
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort(byName);
  if (dirs.length === 0) {
    throw datasetError(`${root} holds no class folders (an image-folder dataset has one sub-folder of PNG/JPEG files per class)`);
  }
  const out: ClassFolder[] = [];
  for (const className of dirs) {
    const dir = join(root, className);
    const files = (await listDir(dir))
      .filter((e) => e.isFile() && IMAGE_EXTENSIONS.test(e.name))
      .map((e) => join(dir, e.name))
      .sort(byName);
    if (files.length === 0) throw datasetError(`class folder ${dir} holds no PNG or JPEG files (.png, .jpg, .jpeg)`);
    out.push({ className, files });
  }
  return out;
}

/** Every PNG/JPEG file under `root`, recursively, sorted by path. */
export async function imageFilesUnder(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const e of await listDir(dir)) {
      const path = join(dir, e.name);
      if (e.isDirectory()) await walk(path);
      else if (e.isFile() && IMAGE_EXTENSIONS.test(e.name)) out.push(path);
    }
  };
  await walk(root);
  if (out.length === 0) throw datasetError(`${root} holds no PNG or JPEG files (.png, .jpg, .jpeg)`);
  return out.sort((a, b) => byName(relative(root, a), relative(root, b)));
}

/** Decode one PNG or JPEG (by its magic bytes) to RGBA. */
export function decodeImage(bytes: Buffer, file: string): { width: number; height: number; data: Uint8Array } {
  try {
    if (bytes.length >= 8 && bytes.readUInt32BE(0) === 0x89504e47) {
      const png = PNG.sync.read(bytes);
      return { width: png.width, height: png.height, data: png.data };
    }
    if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8) {
      return decodeJpeg(bytes, { useTArray: true, formatAsRGBA: true, maxResolutionInMP: 512, maxMemoryUsageInMB: 1024 });
    }
  } catch (err) {
    throw datasetError(`cannot decode image ${file}: ${(err as Error).message}`, err);
  }
  throw datasetError(
    `cannot decode image ${file}: not a PNG or JPEG file (its first bytes are ${bytes.subarray(0, 4).toString('hex') || 'empty'})`,
  );
}

/** Read, decode and resize `files` to height x width. */
export async function decodeImages(files: readonly string[], height: number, width: number): Promise<DecodedImages> {
  const size = height * width * 3;
  const rgb = new Float32Array(files.length * size);
  let grayscale = true;
  for (let i = 0; i < files.length; i++) {
    let bytes: Buffer;
    try {
      bytes = await readFile(files[i]);
    } catch (err) {
      throw datasetError(`cannot read image ${files[i]}: ${(err as Error).message}`, err);
    }
    const image = decodeImage(bytes, files[i]);
    if (grayscale && !isGray(image.data)) grayscale = false;
    resizeBilinear(image, height, width, rgb.subarray(i * size, (i + 1) * size));
  }
  return { count: files.length, height, width, rgb, grayscale };
}

function isGray(rgba: Uint8Array): boolean {
  for (let i = 0; i < rgba.length; i += 4) if (rgba[i] !== rgba[i + 1] || rgba[i] !== rgba[i + 2]) return false;
  return true;
}

/** Bilinear resize of RGBA `src` into `out` (outH x outW x 3), sampling at pixel centres. */
export function resizeBilinear(
  src: { width: number; height: number; data: Uint8Array },
  outH: number,
  outW: number,
  out: Float32Array,
): void {
  const { width: w, height: h, data } = src;
  const sy = h / outH;
  const sx = w / outW;
  for (let y = 0; y < outH; y++) {
    const fy = Math.min(Math.max((y + 0.5) * sy - 0.5, 0), h - 1);
    const y0 = Math.floor(fy);
    const y1 = Math.min(y0 + 1, h - 1);
    const dy = fy - y0;
    for (let x = 0; x < outW; x++) {
      const fx = Math.min(Math.max((x + 0.5) * sx - 0.5, 0), w - 1);
      const x0 = Math.floor(fx);
      const x1 = Math.min(x0 + 1, w - 1);
      const dx = fx - x0;
      const o = (y * outW + x) * 3;
      for (let c = 0; c < 3; c++) {
        const top = data[(y0 * w + x0) * 4 + c] * (1 - dx) + data[(y0 * w + x1) * 4 + c] * dx;
        const bottom = data[(y1 * w + x0) * 4 + c] * (1 - dx) + data[(y1 * w + x1) * 4 + c] * dx;
        out[o + c] = top * (1 - dy) + bottom * dy;
      }
    }
  }
}

/** `images` as `channels` channels: 3 as they are, 1 as the mean of R, G and B (exact for grayscale images). */
export function toChannels(images: DecodedImages, channels: 1 | 3): Float32Array {
  if (channels === 3) return images.rgb;
  const out = new Float32Array(images.rgb.length / 3);
  for (let i = 0, j = 0; i < out.length; i++, j += 3) out[i] = (images.rgb[j] + images.rgb[j + 1] + images.rgb[j + 2]) / 3;
  return out;
}
