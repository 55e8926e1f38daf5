"""Reference files for fern's data-layer tests (tests/unit/test_data*.c).

    /usr/bin/python3 tests/data/make_refs.py OUT_DIR

writes into OUT_DIR:
  - IDX files (plain and gzip) whose values follow formulas the C test
    recomputes, plus corrupt variants;
  - CIFAR-10/100 batches (formula pixels), CSV files, PNG files written by
    hand with zlib (all color types, bit depths 1..16, palettes with tRNS,
    Adam7 interlacing) and JPEG files written by Pillow (when installed);
  - an image folder, corrupt images;
  - transform cases: input images and expected outputs computed with NumPy
    formulas, Pillow (resize, rotate, ImageOps) and PyTorch (bilinear
    interpolate), stored as IDX files;
  - manifest.txt, one case per line, read by the C tests.
Nothing here depends on fern.
"""
import gzip
import math
import os
import struct
import sys
import zlib

import numpy as np

try:
    from PIL import Image, ImageOps

    HAVE_PIL = True
except ImportError:  # pragma: no cover - Debian's python3-pil is normally there
    HAVE_PIL = False

try:
    import torch
    import torch.nn.functional as F

    HAVE_TORCH = True
except ImportError:  # pragma: no cover
    HAVE_TORCH = False

OUT = sys.argv[1] if len(sys.argv) > 1 else "data_refs"
MANIFEST = []


def path(*p):
    full = os.path.join(OUT, *p)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    return full


def rel(p):
    return os.path.relpath(p, OUT)


# ---- IDX -------------------------------------------------------------------------------

IDX_CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D, np.float64: 0x0E}


def idx_bytes(a):
    a = np.ascontiguousarray(a)
    code = IDX_CODES[a.dtype.type]
    hdr = bytes([0, 0, code, a.ndim]) + b"".join(struct.pack(">I", d) for d in a.shape)
    return hdr + a.astype(a.dtype.newbyteorder(">")).tobytes()


def write_idx(name, a, gz=False):
    p = path(name)
    data = idx_bytes(a)
    if gz:
        data = gzip.compress(data)
    with open(p, "wb") as f:
        f.write(data)
    return p


def write_bytes(name, data):
    p = path(name)
    with open(p, "wb") as f:
        f.write(data)
    return p


def formula_u8(shape):
    i = np.arange(int(np.prod(shape)), dtype=np.int64)
    return ((i * 37 + 11) % 256).astype(np.uint8).reshape(shape)


def make_idx():
    # u8 images [7,6,5] + labels, plain and gzip; the C test recomputes the formulas
    im = formula_u8((7, 6, 5))
    lb = (np.arange(7) * 3 % 10).astype(np.uint8)
    write_idx("idx/images-idx3-ubyte", im)
    write_idx("idx/labels-idx1-ubyte", lb)
    write_idx("idx/images-idx3-ubyte.gz", im, gz=True)
    write_idx("idx/labels-idx1-ubyte.gz", lb, gz=True)
    # an MNIST-layout directory (gzip) for fern_dataset_mnist
    write_idx("mnistdir/train-images-idx3-ubyte.gz", im, gz=True)
    write_idx("mnistdir/train-labels-idx1-ubyte.gz", lb, gz=True)
    write_idx("mnistdir/t10k-images-idx3-ubyte", im[:2])
    write_idx("mnistdir/t10k-labels-idx1-ubyte", lb[:2])
    MANIFEST.append("idxpair idx/images-idx3-ubyte idx/labels-idx1-ubyte 7 6 5")
    MANIFEST.append("idxpair idx/images-idx3-ubyte.gz idx/labels-idx1-ubyte.gz 7 6 5")
    # other dtypes: value i -> formula per dtype (see test_data.c)
    n = 24
    i = np.arange(n)
    write_idx("idx/i8.idx", (i * 11 - 128).clip(-128, 127).astype(np.int8).reshape(2, 3, 4))
    write_idx("idx/i16.idx", (i * 1000 - 12000).astype(np.int16).reshape(4, 6))
    write_idx("idx/i32.idx", (i * 100000 - 1000000).astype(np.int32).reshape(24))
    write_idx("idx/f32.idx", ((i - 5) * 0.25).astype(np.float32).reshape(6, 4))
    write_idx("idx/f64.idx", ((i - 5) * 0.125 + 1e-9).astype(np.float64).reshape(3, 8))
    # corrupt files: (file, substring of the error)
    good = idx_bytes(im)
    write_bytes("idx/truncated.idx", good[:100])
    MANIFEST.append("idxbad idx/truncated.idx byte_offset_100")
    write_bytes("idx/shorthdr.idx", good[:9])
    MANIFEST.append("idxbad idx/shorthdr.idx truncated_header")
    write_bytes("idx/badmagic.idx", b"\x01\x00" + good[2:])
    MANIFEST.append("idxbad idx/badmagic.idx bad_magic")
    write_bytes("idx/badtype.idx", good[:2] + b"\x07" + good[3:])
    MANIFEST.append("idxbad idx/badtype.idx unknown_data_type")
    write_bytes("idx/trailing.idx", good + b"xyz")
    MANIFEST.append("idxbad idx/trailing.idx unexpected_bytes")
    write_bytes("idx/truncated.gz", gzip.compress(good)[:-30])
    MANIFEST.append("idxbad idx/truncated.gz gzip")
    write_idx("idx/labels5-idx1-ubyte", lb[:5])
    MANIFEST.append("idxcount idx/images-idx3-ubyte idx/labels5-idx1-ubyte")


# ---- CIFAR ---------------------------------------------------------------------------------


def cifar_record(r, c100):
    # pixel p of plane c: (r*7 + c*50 + p) % 256 ; labels from r
    planes = [((r * 7 + c * 50 + np.arange(1024)) % 256).astype(np.uint8) for c in range(3)]
    lab = bytes([r % 20, (r * 7) % 100]) if c100 else bytes([r % 10])
    return lab + b"".join(p.tobytes() for p in planes)


def make_cifar():
    c10 = b"".join(cifar_record(r, False) for r in range(5))
    c10b = b"".join(cifar_record(r, False) for r in range(5, 8))
    write_bytes("cifar10/data_batch_1.bin", c10)
    for k in range(2, 6):
        write_bytes("cifar10/data_batch_%d.bin" % k, c10b if k == 2 else b"")
    write_bytes("cifar10/test_batch.bin", c10b)
    c100 = b"".join(cifar_record(r, True) for r in range(4))
    write_bytes("cifar100/train.bin", c100)
    write_bytes("cifar100/test.bin", c100[: 3074 * 2])
    write_bytes("cifar_bad/truncated.bin", c10[: 3073 * 2 + 1000])
    MANIFEST.append("cifarbad cifar_bad/truncated.bin 0 byte_offset_6146")
    bad = bytearray(c10)
    bad[3073 * 3] = 12
    write_bytes("cifar_bad/badlabel.bin", bytes(bad))
    MANIFEST.append("cifarbad cifar_bad/badlabel.bin 0 label_12")
    MANIFEST.append("cifar10 cifar10 8")
    MANIFEST.append("cifar100 cifar100 4")


# ---- CSV ---------------------------------------------------------------------------------------


def make_csv():
    vals = np.array([[1.5, -2.0, 3.0, 0.0], [4.25, 5.0, -6.5, 1.0], [7.0, 8.125, 9.0, 2.0]])
    txt = '\ufeffa, "b" ,c,label\r\n'
    txt += "1.5,-2,3,0\r\n\r\n"
    txt += '4.25,"5",-6.5e0,1\n'
    txt += "  7 , 8.125,9,2"
    write_bytes("csv/header.csv", txt.encode())
    write_idx("csv/header.idx", vals)
    MANIFEST.append("csv csv/header.csv csv/header.idx 1 , a b c label")
    MANIFEST.append("csv csv/header.csv csv/header.idx -1 , a b c label")
    txt2 = "1.5;-2;3;0\n4.25;5;-6.5;1\n7;8.125;9;2\n"
    write_bytes("csv/noheader.csv", txt2.encode())
    MANIFEST.append("csv csv/noheader.csv csv/header.idx 0 ; c0 c1 c2 c3")
    MANIFEST.append("csv csv/noheader.csv csv/header.idx -1 ; c0 c1 c2 c3")
    write_bytes("csv/badnum.csv", b"x,y\n1,2\n3,abc\n")
    MANIFEST.append("csvbad csv/badnum.csv line_3,_field_2_(byte_offset_10)")
    write_bytes("csv/badcount.csv", b"x,y\n1,2\n3,4,5\n")
    MANIFEST.append("csvbad csv/badcount.csv line_3_(byte_offset_8)_has_3_fields")
    write_bytes("csv/quote.csv", b'x,y\n1,"2\n')
    MANIFEST.append("csvbad csv/quote.csv unterminated_quoted_field")
    write_bytes("csv/empty.csv", b"x,y\n1,\n")
    MANIFEST.append("csvbad csv/empty.csv empty_field")


# ---- PNG (hand written) ------------------------------------------------------------------------


def png_chunk(t, data):
    return struct.pack(">I", len(data)) + t + data + struct.pack(">I", zlib.crc32(t + data) & 0xFFFFFFFF)


def png_rows(samples, depth):
    """samples: [h, w*channels] ints -> packed rows with filter byte 0."""
    out = b""
    for row in samples:
        if depth == 16:
            b = np.asarray(row, dtype=">u2").tobytes()
        elif depth == 8:
            b = np.asarray(row, dtype=np.uint8).tobytes()
        else:
            per = 8 // depth
            bits = list(row) + [0] * ((-len(row)) % per)
            b = bytes(
                sum(int(bits[k + j]) << (8 - depth * (j + 1)) for j in range(per)) for k in range(0, len(bits), per)
            )
        out += b"\x00" + b
    return out


def write_png(name, samples, ctype, depth, palette=None, trns=None, interlace=False):
    """samples: [h, w, channels] integer array of raw sample values."""
    h, w, c = samples.shape
    raw = b""
    if not interlace:
        raw = png_rows(samples.reshape(h, w * c), depth)
    else:
        passes = [(0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 4), (0, 2, 4, 4), (2, 0, 4, 2), (0, 1, 2, 2), (1, 0, 2, 1)]
        for y0, x0, dy, dx in passes:
            sub = samples[y0::dy, x0::dx]
            if sub.shape[0] and sub.shape[1]:
                raw += png_rows(sub.reshape(sub.shape[0], sub.shape[1] * c), depth)
    data = b"\x89PNG\r\n\x1a\n"
    data += png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 1 if interlace else 0))
    if palette is not None:
        data += png_chunk(b"PLTE", np.asarray(palette, dtype=np.uint8).tobytes())
    if trns is not None:
        data += png_chunk(b"tRNS", trns)
    data += png_chunk(b"IDAT", zlib.compress(raw, 9))
    data += png_chunk(b"IEND", b"")
    return write_bytes(name, data)


def make_png():
    rng = np.random.default_rng(7)
    h, w = 9, 11
    cases = []
    g8 = rng.integers(0, 256, (h, w, 1))
    cases.append(("gray8", write_png("png/gray8.png", g8, 0, 8), g8))
    g1 = rng.integers(0, 2, (h, w, 1))
    cases.append(("gray1", write_png("png/gray1.png", g1, 0, 1), g1 * 255))
    g4 = rng.integers(0, 16, (h, w, 1))
    cases.append(("gray4", write_png("png/gray4.png", g4, 0, 4), g4 * 17))
    g16 = rng.integers(0, 65536, (h, w, 1))
    cases.append(("gray16", write_png("png/gray16.png", g16, 0, 16), g16 >> 8))
    ga = rng.integers(0, 256, (h, w, 2))
    cases.append(("gray_alpha", write_png("png/ga.png", ga, 4, 8), ga))
    rgb = rng.integers(0, 256, (h, w, 3))
    cases.append(("rgb", write_png("png/rgb.png", rgb, 2, 8), rgb))
    rgba = rng.integers(0, 256, (h, w, 4))
    cases.append(("rgba", write_png("png/rgba.png", rgba, 6, 8), rgba))
    rgb16 = rng.integers(0, 65536, (h, w, 3))
    cases.append(("rgb16", write_png("png/rgb16.png", rgb16, 2, 16), rgb16 >> 8))
    pal = rng.integers(0, 256, (6, 3))
    idx = rng.integers(0, 6, (h, w, 1))
    cases.append(("palette", write_png("png/pal.png", idx, 3, 8, palette=pal), pal[idx[..., 0]]))
    idx2 = rng.integers(0, 4, (h, w, 1))
    alpha = np.array([0, 128, 255, 255])
    exp = np.concatenate([pal[idx2[..., 0]], alpha[idx2[..., 0]][..., None]], axis=2)
    cases.append(
        ("palette_trns", write_png("png/pal_trns.png", idx2, 3, 2, palette=pal[:4], trns=bytes([0, 128])), exp)
    )
    big = rng.integers(0, 256, (19, 23, 3))
    cases.append(("interlaced", write_png("png/interlaced.png", big, 2, 8, interlace=True), big))
    gi = rng.integers(0, 4, (13, 10, 1))
    cases.append(("interlaced_gray2", write_png("png/interlaced_g2.png", gi, 0, 2, interlace=True), gi * 85))
    for name, p, exp in cases:
        e = np.asarray(exp, dtype=np.uint8)
        ep = write_idx("png/%s.expect.idx" % name, e)
        MANIFEST.append("image %s 0 %s 0" % (rel(p), rel(ep)))
    # channel conversions (Pillow's rules: L = (19595 R + 38470 G + 7471 B + 32768) >> 16)
    L = ((rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 + 0x8000) >> 16).astype(np.uint8)
    MANIFEST.append("image png/rgb.png 1 %s 0" % rel(write_idx("png/rgb_to_l.expect.idx", L[..., None])))
    MANIFEST.append("image png/rgba.png 3 %s 0" % rel(write_idx("png/rgba_to_rgb.idx", rgba[..., :3].astype(np.uint8))))
    g3 = np.repeat(g8, 3, axis=2).astype(np.uint8)
    MANIFEST.append("image png/gray8.png 3 %s 0" % rel(write_idx("png/gray_to_rgb.idx", g3)))
    g4a = np.concatenate([g3, np.full((h, w, 1), 255)], axis=2).astype(np.uint8)
    MANIFEST.append("image png/gray8.png 4 %s 0" % rel(write_idx("png/gray_to_rgba.idx", g4a)))
    if HAVE_PIL:  # cross-check the hand-written files with Pillow
        for name, p, exp in cases:
            if name in ("gray16", "rgb16", "gray1"):
                continue
            im = Image.open(p)
            im = im.convert("RGBA" if name == "palette_trns" else ("RGB" if name == "palette" else im.mode))
            got = np.asarray(im)
            if got.ndim == 2:
                got = got[..., None]
            assert np.array_equal(got, np.asarray(exp, dtype=np.uint8)), name
    # corrupt
    good = open(path("png/rgb.png"), "rb").read()
    write_bytes("bad/truncated.png", good[: len(good) // 2])
    MANIFEST.append("imagebad bad/truncated.png PNG_error_at_byte_offset")
    crc = bytearray(good)
    crc[40] ^= 0xFF  # inside IDAT data: CRC mismatch
    write_bytes("bad/crc.png", bytes(crc))
    MANIFEST.append("imagebad bad/crc.png PNG_error")
    write_bytes("bad/garbage.png", b"this is not an image at all")
    MANIFEST.append("imagebad bad/garbage.png not_a_PNG_or_JPEG")
    write_bytes("bad/empty.png", b"")
    MANIFEST.append("imagebad bad/empty.png not_a_PNG_or_JPEG")


# ---- JPEG (Pillow, decoded by Pillow with the same libjpeg) --------------------------------------


def smooth_image(h, w, c, seed):
    y, x = np.mgrid[0:h, 0:w]
    chans = [128 + 100 * np.sin(x / (3.0 + k) + y / (5.0 + 2 * k) + seed) for k in range(c)]
    return np.clip(np.stack(chans, axis=2), 0, 255).astype(np.uint8)


def make_jpeg():
    if not HAVE_PIL:
        return
    rgb = smooth_image(24, 31, 3, 1)
    Image.fromarray(rgb).save(path("jpeg/rgb.jpg"), quality=90)
    Image.fromarray(rgb).save(path("jpeg/prog.jpg"), quality=80, progressive=True)
    Image.fromarray(rgb).save(path("jpeg/sub420.jpg"), quality=75, subsampling=2)
    g = smooth_image(17, 20, 1, 2)[..., 0]
    Image.fromarray(g).save(path("jpeg/gray.jpg"), quality=90)
    for name in ("rgb", "prog", "sub420", "gray"):
        p = path("jpeg/%s.jpg" % name)
        got = np.asarray(Image.open(p))
        if got.ndim == 2:
            got = got[..., None]
        MANIFEST.append("image %s 0 %s 0" % (rel(p), rel(write_idx("jpeg/%s.expect.idx" % name, got))))
    p = path("jpeg/rgb.jpg")
    gl = np.asarray(Image.open(p).convert("L"))[..., None]
    MANIFEST.append("image %s 1 %s 0" % (rel(p), rel(write_idx("jpeg/rgb_to_l.idx", gl))))
    good = open(p, "rb").read()
    write_bytes("bad/truncated.jpg", good[: len(good) * 2 // 3])
    MANIFEST.append("imagebad bad/truncated.jpg JPEG_error")
    write_bytes("bad/header.jpg", good[:30])
    MANIFEST.append("imagebad bad/header.jpg JPEG_error")


def make_folder():
    rng = np.random.default_rng(11)
    items = []

    def add(cls, fname, arr, fmt):
        p = path("folder", cls, fname)
        if fmt == "png":
            write_png(rel(p), arr, {1: 0, 3: 2, 4: 6}[arr.shape[2]], 8)
            exp = arr
        else:
            Image.fromarray(arr if arr.shape[2] == 3 else arr[..., 0]).save(p, quality=92)
            exp = np.asarray(Image.open(p))
            if exp.ndim == 2:
                exp = exp[..., None]
        return exp

    # class order: ants < bees < cats (byte order); files sorted by name
    a1 = add("ants", "b.png", rng.integers(0, 256, (5, 7, 3)), "png")
    a0 = add("ants", "a.png", rng.integers(0, 256, (6, 4, 3)), "png")
    items += [("ants", 0, a0), ("ants", 0, a1)]
    if HAVE_PIL:
        b0 = add("bees", "x1.JPG", smooth_image(8, 9, 3, 3), "jpg")
        items.append(("bees", 1, b0))
    b1 = add("bees", "x2.png", rng.integers(0, 256, (3, 3, 3)), "png")
    items.append(("bees", 1, b1))
    write_bytes("folder/bees/notes.txt", b"not an image")
    c0 = add("cats", "c.png", rng.integers(0, 256, (4, 4, 3)), "png")
    items.append(("cats", 2, c0))
    MANIFEST.append("folder folder %d" % len(items))
    for i, (cls, lab, exp) in enumerate(items):
        e = write_idx("folder_expect/%d.idx" % i, np.asarray(exp, dtype=np.uint8))
        MANIFEST.append("folderitem %d %d %s" % (i, lab, rel(e)))
    os.makedirs(path("folder_bad", "only", "x"), exist_ok=True)
    write_bytes("folder_bad/only/broken.png", b"\x89PNG\r\n\x1a\nbroken")
    MANIFEST.append("folderbad folder_bad broken.png")


# ---- transforms ---------------------------------------------------------------------------------


def tcase(name, op, inp, exp, tol, frac, *params):
    """One transform case: input and expected IDX files, tolerance (absolute),
    allowed fraction of elements beyond it, then op parameters."""
    ip = write_idx("tf/%s.in.idx" % name, inp)
    ep = write_idx("tf/%s.out.idx" % name, exp)
    MANIFEST.append(
        "transform %s %s %s %s %g %g %s" % (name, op, rel(ip), rel(ep), tol, frac, " ".join(repr(float(p)) for p in params))
    )


def rot_matrix(deg, h, w):
    a = -math.radians(deg % 360.0)
    cs, sn = round(math.cos(a), 15), round(math.sin(a), 15)
    cx, cy = w / 2.0, h / 2.0
    return [cs, sn, cs * -cx + sn * -cy + cx, -sn, cs, -sn * -cx + cs * -cy + cy]


def affine_ref(img, m, bilinear, fill):
    """img HWC float64; source = m * (x+0.5, y+0.5, 1); outside -> fill."""
    h, w, c = img.shape
    out = np.empty_like(img)
    for y in range(h):
        for x in range(w):
            xi = m[0] * (x + 0.5) + m[1] * (y + 0.5) + m[2]
            yi = m[3] * (x + 0.5) + m[4] * (y + 0.5) + m[5]
            if not (xi >= 0 and yi >= 0 and xi < w and yi < h):
                out[y, x] = fill
                continue
            if not bilinear:
                out[y, x] = img[int(yi), int(xi)]
                continue
            xs, ys = xi - 0.5, yi - 0.5
            fx, fy = math.floor(xs), math.floor(ys)
            dx, dy = xs - fx, ys - fy
            x0, y0 = max(fx, 0), max(fy, 0)
            x1, y1 = min(fx + 1, w - 1), min(fy + 1, h - 1)
            top = img[y0, x0] + (img[y0, x1] - img[y0, x0]) * dx
            bot = img[y1, x0] + (img[y1, x1] - img[y1, x0]) * dx
            out[y, x] = top + (bot - top) * dy
    return out


def round8(v):
    return np.clip(np.floor(np.asarray(v, dtype=np.float64) + 0.5), 0, 255).astype(np.uint8)


def gray(img):
    img = img.astype(np.float64)
    if img.shape[2] < 3:
        return img[..., 0]
    return 0.299 * img[..., 0] + 0.587 * img[..., 1] + 0.114 * img[..., 2]


def make_transforms():
    rng = np.random.default_rng(3)
    rgb = smooth_image(13, 17, 3, 0)
    rgb = np.clip(rgb.astype(np.int64) + rng.integers(-20, 21, rgb.shape), 0, 255).astype(np.uint8)
    g = rgb[..., :1].copy()
    chw = rng.random((3, 12, 10)).astype(np.float32)
    NEAREST, BILINEAR, NOAA = 0, 1, 2
    # resize: Pillow BILINEAR (antialiased) for u8, exact
    if HAVE_PIL:
        for (oh, ow) in ((7, 5), (29, 40), (13, 9), (6, 30)):
            exp = np.asarray(Image.fromarray(rgb).resize((ow, oh), Image.BILINEAR))
            tcase("resize_aa_rgb_%dx%d" % (oh, ow), "resize", rgb, exp, 0, 0, oh, ow, BILINEAR)
            expg = np.asarray(Image.fromarray(g[..., 0]).resize((ow, oh), Image.BILINEAR))[..., None]
            tcase("resize_aa_gray_%dx%d" % (oh, ow), "resize", g, expg, 0, 0, oh, ow, BILINEAR)
            # f32 CHW through Pillow's mode F
            expf = np.stack(
                [np.asarray(Image.fromarray(chw[c], "F").resize((ow, oh), Image.BILINEAR)) for c in range(3)]
            )
            tcase("resize_aa_f32_%dx%d" % (oh, ow), "resize", chw, expf.astype(np.float32), 1e-5, 0, oh, ow, BILINEAR)
            # nearest: Pillow cross-check (a few boundary pixels may differ: Pillow accumulates)
            expn = np.asarray(Image.fromarray(rgb).resize((ow, oh), Image.NEAREST))
            tcase("resize_nearest_pil_%dx%d" % (oh, ow), "resize", rgb, expn, 0, 0.02, oh, ow, NEAREST)
        # shorter side
        exp = np.asarray(Image.fromarray(rgb).resize((int(8 * 17 / 13), 8), Image.BILINEAR))
        tcase("resize_short_side", "resize", rgb, exp, 0, 0, 8, 0, BILINEAR)
    # nearest, formula floor((x + 0.5) * in / out)
    for (oh, ow) in ((7, 5), (29, 40)):
        ys = np.minimum(((np.arange(oh) + 0.5) * 13 / oh).astype(int), 12)
        xs = np.minimum(((np.arange(ow) + 0.5) * 17 / ow).astype(int), 16)
        tcase("resize_nearest_%dx%d" % (oh, ow), "resize", rgb, rgb[ys][:, xs], 0, 0, oh, ow, NEAREST)
    # plain half-pixel bilinear vs torch (align_corners=False, no antialias)
    if HAVE_TORCH:
        for (oh, ow) in ((7, 5), (29, 40), (12, 23)):
            exp = F.interpolate(torch.from_numpy(chw)[None], size=(oh, ow), mode="bilinear", align_corners=False)[0]
            tcase("resize_noaa_f32_%dx%d" % (oh, ow), "resize", chw, exp.numpy(), 2e-6, 0, oh, ow, NOAA)
            x = torch.from_numpy(rgb.astype(np.float64)).permute(2, 0, 1)[None]
            e8 = F.interpolate(x, size=(oh, ow), mode="bilinear", align_corners=False)[0].permute(1, 2, 0).numpy()
            tcase("resize_noaa_u8_%dx%d" % (oh, ow), "resize", rgb, round8(e8), 1, 0, oh, ow, NOAA)  # ties
    # center crop (torchvision: offset round((H - h) / 2), half to even; pad if larger)
    for (ch, cw) in ((5, 8), (12, 16), (13, 17), (16, 20), (4, 21)):
        H, W = 13, 17
        ph, pw = max(ch - H, 0), max(cw - W, 0)
        padded = np.pad(rgb, ((ph // 2, (ph + 1) // 2), (pw // 2, (pw + 1) // 2), (0, 0)))
        top = int(round((padded.shape[0] - ch) / 2.0))
        left = int(round((padded.shape[1] - cw) / 2.0))
        tcase("center_crop_%dx%d" % (ch, cw), "center_crop", rgb, padded[top : top + ch, left : left + cw], 0, 0, ch, cw)
    tcase("center_crop_f32", "center_crop", chw, chw[:, 2:9, 1:9], 0, 0, 7, 8)
    tcase("crop", "crop", rgb, rgb[3:10, 2:13], 0, 0, 3, 2, 7, 11)
    tcase("pad", "pad", rgb, np.pad(rgb, ((2, 4), (1, 3), (0, 0)), constant_values=9), 0, 0, 1, 2, 3, 4, 9)
    tcase("pad_f32", "pad", chw, np.pad(chw, ((0, 0), (1, 0), (0, 2)), constant_values=0.5), 0, 0, 0, 1, 2, 0, 0.5)
    tcase("hflip", "hflip", rgb, rgb[:, ::-1], 0, 0)
    tcase("vflip", "vflip", rgb, rgb[::-1], 0, 0)
    tcase("hflip_f32", "hflip", chw, chw[:, :, ::-1], 0, 0)
    tcase("vflip_gray", "vflip", g, g[::-1], 0, 0)
    # rotation: NumPy formula (exact) and Pillow cross-check (nearest)
    for deg in (30.0, 90.0, -45.0, 200.0):
        m = rot_matrix(deg, 13, 17)
        exp = affine_ref(rgb.astype(np.float64), m, False, 7).astype(np.uint8)
        tcase("rotate_nearest_%g" % deg, "rotate", rgb, exp, 0, 0, deg, NEAREST, 7)
        expb = round8(affine_ref(rgb.astype(np.float64), m, True, 7))
        tcase("rotate_bilinear_%g" % deg, "rotate", rgb, expb, 1, 0, deg, BILINEAR, 7)
        if HAVE_PIL:
            expp = np.asarray(Image.fromarray(rgb).rotate(deg, resample=Image.NEAREST, fillcolor=(7, 7, 7)))
            tcase("rotate_nearest_pil_%g" % deg, "rotate", rgb, expp, 0, 0.03, deg, NEAREST, 7)
    mf = rot_matrix(25.0, 12, 10)
    expf = affine_ref(chw.transpose(1, 2, 0).astype(np.float64), mf, True, 0.25).transpose(2, 0, 1)
    tcase("rotate_bilinear_f32", "rotate", chw, expf.astype(np.float32), 1e-5, 0, 25.0, BILINEAR, 0.25)
    ma = [1.0, 0.2, -1.5, 0.1, 0.9, 0.7]
    tcase("affine_nearest", "affine", rgb, affine_ref(rgb.astype(np.float64), ma, False, 0).astype(np.uint8), 0, 0,
          *ma, NEAREST, 0)
    # value transforms
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    expn = ((chw - np.array(mean, np.float32)[:, None, None]) / np.array(std, np.float32)[:, None, None]).astype(np.float32)
    tcase("normalize", "normalize", chw, expn, 1e-6, 0, 3, *mean, *std)
    tcase("normalize_one", "normalize", chw, ((chw - np.float32(0.5)) / np.float32(0.25)).astype(np.float32), 1e-6, 0, 1,
          0.5, 0.25)
    tcase("to_tensor", "to_tensor", rgb, (rgb.transpose(2, 0, 1).astype(np.float32) / np.float32(255)), 1e-7, 0)
    tcase("to_tensor_gray", "to_tensor", g, (g.transpose(2, 0, 1).astype(np.float32) / np.float32(255)), 1e-7, 0)
    tcase("rescale", "rescale", rgb, (rgb.astype(np.float32) * np.float32(1 / 127.5) - np.float32(1)).astype(np.float32),
          1e-6, 0, 1 / 127.5, -1)
    tcase("hwc_to_chw", "hwc_to_chw", rgb, rgb.transpose(2, 0, 1), 0, 0)
    # color (formulas of data.h; u8 rounded half up and clamped)
    rf = rgb.astype(np.float64)
    for f in (0.3, 1.7):
        tcase("brightness_%g" % f, "brightness", rgb, round8(rf * f), 0, 0, f)
        m = gray(rgb).mean()
        tcase("contrast_%g" % f, "contrast", rgb, round8(f * rf + (1 - f) * m), 1, 0.01, f)
        gg = gray(rgb)[..., None]
        tcase("saturation_%g" % f, "saturation", rgb, round8(f * rf + (1 - f) * gg), 1, 0.01, f)
    cf = chw.astype(np.float64)
    gf = 0.299 * cf[0] + 0.587 * cf[1] + 0.114 * cf[2]
    tcase("contrast_f32", "contrast", chw, np.clip(1.4 * cf + (1 - 1.4) * gf.mean(), 0, 1).astype(np.float32), 1e-6, 0, 1.4)
    tcase("saturation_f32", "saturation", chw, np.clip(0.5 * cf + 0.5 * gf, 0, 1).astype(np.float32), 1e-6, 0, 0.5)
    tcase("brightness_f32", "brightness", chw, np.clip(cf * 1.3, 0, 1).astype(np.float32), 1e-6, 0, 1.3)
    # AutoAugment ops: ids of fern_aa_op
    AA = dict(identity=0, shear_x=1, shear_y=2, translate_x=3, translate_y=4, rotate=5, brightness=6, color=7,
              contrast=8, sharpness=9, posterize=10, solarize=11, autocontrast=12, equalize=13, invert=14)
    low = (rgb // 2 + 40).astype(np.uint8)  # a low-contrast image for autocontrast / equalize
    if HAVE_PIL:
        pim = Image.fromarray(low)
        tcase("aa_autocontrast", "aa", low, np.asarray(ImageOps.autocontrast(pim)), 0, 0, AA["autocontrast"], 0, 0)
        tcase("aa_equalize", "aa", low, np.asarray(ImageOps.equalize(pim)), 0, 0, AA["equalize"], 0, 0)
        tcase("aa_equalize_rgb", "aa", rgb, np.asarray(ImageOps.equalize(Image.fromarray(rgb))), 0, 0, AA["equalize"], 0, 0)
        tcase("aa_posterize", "aa", rgb, np.asarray(ImageOps.posterize(Image.fromarray(rgb), 3)), 0, 0, AA["posterize"], 3, 0)
        tcase("aa_solarize", "aa", rgb, np.asarray(ImageOps.solarize(Image.fromarray(rgb), 100)), 0, 0, AA["solarize"], 100, 0)
        tcase("aa_invert", "aa", rgb, np.asarray(ImageOps.invert(Image.fromarray(rgb))), 0, 0, AA["invert"], 0, 0)
    h, w = 13, 17
    tcase("aa_shear_x", "aa", rgb,
          affine_ref(rf, [1, 0.3, -0.3 * h / 2, 0, 1, 0], False, 5).astype(np.uint8), 0, 0, AA["shear_x"], 0.3, 5)
    tcase("aa_shear_y", "aa", rgb,
          affine_ref(rf, [1, 0, 0, -0.2, 1, 0.2 * w / 2], False, 5).astype(np.uint8), 0, 0, AA["shear_y"], -0.2, 5)
    tcase("aa_translate_x", "aa", rgb, affine_ref(rf, [1, 0, -4, 0, 1, 0], False, 0).astype(np.uint8), 0, 0,
          AA["translate_x"], 4, 0)
    tcase("aa_translate_y", "aa", rgb, affine_ref(rf, [1, 0, 0, 0, 1, 3], False, 0).astype(np.uint8), 0, 0,
          AA["translate_y"], -3, 0)
    tcase("aa_rotate", "aa", rgb, affine_ref(rf, rot_matrix(20, h, w), False, 0).astype(np.uint8), 0, 0, AA["rotate"], 20, 0)
    tcase("aa_color", "aa", rgb, round8(0.4 * rf + 0.6 * gray(rgb)[..., None]), 1, 0.01, AA["color"], -0.6, 0)
    # sharpness: blend with the 3x3 smoothed image (center weight 5, /13, rounded), borders kept
    deg = rf.copy()
    k = np.ones((3, 3))
    k[1, 1] = 5
    for y in range(1, h - 1):
        for x in range(1, w - 1):
            deg[y, x] = np.floor((rf[y - 1 : y + 2, x - 1 : x + 2] * k[..., None]).sum(axis=(0, 1)) / 13.0 + 0.5)
    s = 1.8
    exps = round8(s * rf + (1 - s) * deg)
    exps[0], exps[-1], exps[:, 0], exps[:, -1] = rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]
    tcase("aa_sharpness", "aa", rgb, exps, 1, 0.01, AA["sharpness"], 0.8, 0)


def main():
    os.makedirs(OUT, exist_ok=True)
    make_idx()
    make_cifar()
    make_csv()
    make_png()
    make_jpeg()
    if HAVE_PIL:
        make_folder()
    make_transforms()
    with open(path("manifest.txt"), "w") as f:
        f.write("\n".join(MANIFEST) + "\n")
    with open(path("stamp"), "w") as f:
        f.write("ok\n")


if __name__ == "__main__":
    main()
