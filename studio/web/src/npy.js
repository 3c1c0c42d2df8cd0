// Reads a NumPy .npy file (float32, C order), as the step session writes.
export function parseNpy(buffer) {
  const bytes = new Uint8Array(buffer);
  if (bytes[0] !== 0x93 || String.fromCharCode(...bytes.slice(1, 6)) !== 'NUMPY') throw new Error('not a .npy file');
  const major = bytes[6];
  const view = new DataView(buffer);
  const headerLen = major >= 2 ? view.getUint32(8, true) : view.getUint16(8, true);
  const offset = (major >= 2 ? 12 : 10) + headerLen;
  const header = new TextDecoder().decode(bytes.slice(major >= 2 ? 12 : 10, offset));
  if (!/'descr':\s*'<f4'/.test(header)) throw new Error(`unsupported .npy type: ${header}`);
  if (/'fortran_order':\s*True/.test(header)) throw new Error('Fortran-ordered .npy');
  const shape = (header.match(/'shape':\s*\(([^)]*)\)/)[1].match(/\d+/g) || []).map(Number);
  return { shape, data: new Float32Array(buffer.slice(offset)) };
}
