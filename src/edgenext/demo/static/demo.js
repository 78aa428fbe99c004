// EdgeNeXt in the browser: runs model.onnx with ONNX Runtime Web on images the visitor picks, drops or
// films. Written by `edgenext demo`; model.json (the exporter's app config) says what the model needs.
// Preprocessing reproduces the Python evaluation transform bit for bit: Pillow's uint8 resampling
// (libImaging/Resample.c's fixed-point two-pass filter), torchvision's center crop, ToTensor and
// Normalize in float32. window.edgenext exposes the results (and hooks) to tests and benchmarks.
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const api = { results: [], config: null, backend: null, threads: 1 };
  window.edgenext = api;
  let session = null;

  // ---- messages and state -------------------------------------------------------------------
  function say(text, kind = 'error') {
    const item = document.createElement('p');
    item.className = `message ${kind}`;
    item.textContent = text;
    $('messages').append(item);
    return item;
  }
  function setState(state) { document.body.dataset.state = state; }
  function publish() { $('results').dataset.results = JSON.stringify(api.results.map(summary)); }
  function summary(r) { const { mask, view, ...rest } = r; return rest; }

  // ---- image size from the file header, before anything is decoded ------------------------------
  const be16 = (b, i) => (b[i] << 8) | b[i + 1];
  const le16 = (b, i) => b[i] | (b[i + 1] << 8);
  const be32 = (b, i) => ((b[i] << 24) >>> 0) + (b[i + 1] << 16) + (b[i + 2] << 8) + b[i + 3];
  const le32 = (b, i) => ((b[i + 3] << 24) >>> 0) + (b[i + 2] << 16) + (b[i + 1] << 8) + b[i];
  const ascii = (b, i, n) => String.fromCharCode(...b.subarray(i, i + n));

  function headerSize(b) {
    if (b.length >= 24 && be32(b, 0) === 0x89504e47 && ascii(b, 12, 4) === 'IHDR') {
      return { format: 'PNG', width: be32(b, 16), height: be32(b, 20) };
    }
    if (b.length >= 10 && ascii(b, 0, 4) === 'GIF8') return { format: 'GIF', width: le16(b, 6), height: le16(b, 8) };
    if (b.length >= 26 && ascii(b, 0, 2) === 'BM') {
      return { format: 'BMP', width: Math.abs(le32(b, 18) | 0), height: Math.abs(le32(b, 22) | 0) };
    }
    if (b.length >= 30 && ascii(b, 0, 4) === 'RIFF' && ascii(b, 8, 4) === 'WEBP') {
      const chunk = ascii(b, 12, 4);
      if (chunk === 'VP8 ') return { format: 'WebP', width: le16(b, 26) & 0x3fff, height: le16(b, 28) & 0x3fff };
      if (chunk === 'VP8L') {
        return { format: 'WebP', width: 1 + (b[21] | ((b[22] & 0x3f) << 8)),
                 height: 1 + ((b[22] >> 6) | (b[23] << 2) | ((b[24] & 0xf) << 10)) };
      }
      if (chunk === 'VP8X') {
        return { format: 'WebP', width: 1 + (b[24] | (b[25] << 8) | (b[26] << 16)),
                 height: 1 + (b[27] | (b[28] << 8) | (b[29] << 16)) };
      }
    }
    if (b.length >= 4 && b[0] === 0xff && b[1] === 0xd8) return jpegSize(b);
    return null;
  }

  function jpegSize(b) {
    let i = 2;
    while (i + 9 < b.length) {
      if (b[i] !== 0xff) return null;
      const marker = b[i + 1];
      if (marker === 0xff) { i += 1; continue; }
      const frame = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
      if (frame) return { format: 'JPEG', height: be16(b, i + 5), width: be16(b, i + 7) };
      i += 2 + be16(b, i + 2);
    }
    return null;
  }

  function checkSize(name, width, height) {
    const { max_side: side, max_pixels: pixels } = api.config.demo;
    if (width > side || height > side || width * height > pixels) {
      throw new Error(`${name} is ${width} x ${height} px (${(width * height / 1e6).toFixed(1)} megapixels): larger ` +
        `than this page takes (${side} px a side and ${pixels / 1e6} megapixels; a phone's browser runs out of ` +
        'memory well before). Scale it down first.');
    }
    if (width < 1 || height < 1) throw new Error(`${name} has no pixels (${width} x ${height}).`);
  }

  // ---- decoding: exact RGB bytes, transparency composited on white as the Python loader does -------
  async function decode(file) {
    const head = new Uint8Array(await file.slice(0, 1 << 19).arrayBuffer());
    const size = headerSize(head);
    if (size === null && !(file.type || '').startsWith('image/')) {
      throw new Error(`${file.name} is not an image (PNG, JPEG, GIF, WebP or BMP)` +
        (file.type ? `: the browser calls it ${file.type}.` : '.'));
    }
    if (size !== null) checkSize(file.name, size.width, size.height);
    let bitmap;
    try {
      bitmap = await createImageBitmap(file, { colorSpaceConversion: 'none', premultiplyAlpha: 'none',
                                               imageOrientation: 'none' });
    } catch (err) {
      throw new Error(`${file.name} could not be decoded as an image (${err.message || err}).`);
    }
    checkSize(file.name, bitmap.width, bitmap.height);
    return { bitmap, ...pixelsOf(bitmap, bitmap.width, bitmap.height) };
  }

  function pixelsOf(source, width, height) {
    const canvas = new OffscreenCanvas(width, height);
    const ctx = canvas.getContext('2d', { willReadFrequently: true, colorSpace: 'srgb' });
    ctx.drawImage(source, 0, 0);
    const rgba = ctx.getImageData(0, 0, width, height, { colorSpace: 'srgb' }).data;
    const rgb = new Uint8Array(width * height * 3);
    for (let p = 0, q = 0; p < rgba.length; p += 4, q += 3) {
      const a = rgba[p + 3];
      for (let c = 0; c < 3; c++) rgb[q + c] = a === 255 ? rgba[p + c] : Math.round((rgba[p + c] * a + 255 * (255 - a)) / 255);
    }
    return { rgb, width, height };
  }

  // ---- Pillow's resampling (Resample.c): separable, fixed point, uint8 between the passes ----------
  const FILTERS = {
    box: { support: 0.5, f: (x) => (x > -0.5 && x <= 0.5 ? 1.0 : 0.0) },
    bilinear: { support: 1.0, f: (x) => { x = Math.abs(x); return x < 1.0 ? 1.0 - x : 0.0; } },
    hamming: { support: 1.0, f: (x) => {
      x = Math.abs(x);
      if (x === 0.0) return 1.0;
      if (x >= 1.0) return 0.0;
      x *= Math.PI;
      return Math.sin(x) / x * (Math.fround(0.54) + Math.fround(0.46) * Math.cos(x));
    } },
    bicubic: { support: 2.0, f: (x) => {
      const a = -0.5;
      x = Math.abs(x);
      if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
      if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
      return 0.0;
    } },
    lanczos: { support: 3.0, f: (x) => {
      const sinc = (v) => (v === 0.0 ? 1.0 : Math.sin(v * Math.PI) / (v * Math.PI));
      return x >= -3.0 && x < 3.0 ? sinc(x) * sinc(x / 3) : 0.0;
    } },
  };
  const PRECISION_BITS = 32 - 8 - 2;

  function coefficients(inSize, outSize, filter) {
    const scale = inSize / outSize;
    const filterscale = Math.max(scale, 1.0);
    const support = filter.support * filterscale;
    const ksize = Math.ceil(support) * 2 + 1;
    const bounds = new Int32Array(outSize * 2);
    const kk = new Int32Array(outSize * ksize);
    const w = new Float64Array(ksize);
    for (let xx = 0; xx < outSize; xx++) {
      const center = (xx + 0.5) * scale;
      const ss = 1.0 / filterscale;
      const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
      const count = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
      let ww = 0.0;
      for (let x = 0; x < count; x++) { w[x] = filter.f((x + xmin - center + 0.5) * ss); ww += w[x]; }
      for (let x = 0; x < count; x++) {
        const k = ww !== 0.0 ? w[x] / ww : w[x];
        kk[xx * ksize + x] = Math.trunc(k < 0 ? -0.5 + k * (1 << PRECISION_BITS) : 0.5 + k * (1 << PRECISION_BITS));
      }
      bounds[xx * 2] = xmin;
      bounds[xx * 2 + 1] = count;
    }
    return { ksize, bounds, kk };
  }

  const clip8 = (ss) => { const v = ss >> PRECISION_BITS; return v < 0 ? 0 : v > 255 ? 255 : v; };

  function resample(src, width, height, outW, outH, interpolation) {
    const filter = FILTERS[interpolation];
    if (!filter) throw new Error(`interpolation ${interpolation} is not supported by this page`);
    let img = src, w = width;
    const vert = coefficients(height, outH, filter);
    const first = vert.bounds[0];
    const last = vert.bounds[outH * 2 - 2] + vert.bounds[outH * 2 - 1];
    let rowOffset = 0;
    if (outW !== width) {  // horizontal pass over the rows the vertical pass reads
      const { ksize, bounds, kk } = coefficients(width, outW, filter);
      const rows = last - first;
      const tmp = new Uint8Array(outW * rows * 3);
      for (let y = 0; y < rows; y++) {
        const line = (y + first) * width * 3;
        for (let xx = 0; xx < outW; xx++) {
          const xmin = bounds[xx * 2], count = bounds[xx * 2 + 1], k = xx * ksize;
          let s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
          for (let x = 0; x < count; x++) {
            const p = line + (x + xmin) * 3, c = kk[k + x];
            s0 += src[p] * c; s1 += src[p + 1] * c; s2 += src[p + 2] * c;
          }
          const o = (y * outW + xx) * 3;
          tmp[o] = clip8(s0); tmp[o + 1] = clip8(s1); tmp[o + 2] = clip8(s2);
        }
      }
      img = tmp; w = outW; rowOffset = first;
    }
    if (outH === height) return img;
    const out = new Uint8Array(w * outH * 3);
    for (let yy = 0; yy < outH; yy++) {
      const ymin = vert.bounds[yy * 2] - rowOffset, count = vert.bounds[yy * 2 + 1], k = yy * vert.ksize;
      for (let xx = 0; xx < w; xx++) {
        let s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
        for (let y = 0; y < count; y++) {
          const p = ((y + ymin) * w + xx) * 3, c = vert.kk[k + y];
          s0 += img[p] * c; s1 += img[p + 1] * c; s2 += img[p + 2] * c;
        }
        const o = (yy * w + xx) * 3;
        out[o] = clip8(s0); out[o + 1] = clip8(s1); out[o + 2] = clip8(s2);
      }
    }
    return out;
  }

  // ---- the evaluation transform of model.json's "preprocess" -----------------------------------
  const roundHalfEven = (v) => { const f = Math.floor(v), d = v - f; return d > 0.5 || (d === 0.5 && f % 2 !== 0) ? f + 1 : f; };

  function preprocess(rgb, width, height) {
    const pre = api.config.preprocess;
    const [, , th, tw] = api.config.input.shape;
    let w = width, h = height, pixels = rgb, top = 0, left = 0;
    if (pre.resize_short_side) {  // torchvision's Resize(int): the short side to S, the long side truncated
      const s = pre.resize_short_side;
      const [nw, nh] = w <= h ? [s, Math.trunc(s * h / w)] : [Math.trunc(s * w / h), s];
      if (nw !== w || nh !== h) { pixels = resample(rgb, w, h, nw, nh, pre.interpolation); w = nw; h = nh; }
    } else if (pre.resize) {
      const [rh, rw] = pre.resize;
      if (rw !== w || rh !== h) { pixels = resample(rgb, w, h, rw, rh, pre.interpolation); w = rw; h = rh; }
    }
    if (pre.center_crop) {  // torchvision's CenterCrop: offsets rounded half to even (Python's round)
      top = roundHalfEven((h - th) / 2);
      left = roundHalfEven((w - tw) / 2);
    }
    if (h - top < th || w - left < tw) throw new Error(`preprocessing gave ${w} x ${h} px, less than the input ${tw} x ${th}`);
    const out = new Float32Array(3 * th * tw);
    const mean = pre.mean.map(Math.fround), std = pre.std.map(Math.fround);
    for (let c = 0; c < 3; c++) {
      const plane = c * th * tw;
      for (let y = 0; y < th; y++) {
        const row = ((y + top) * w + left) * 3 + c;
        for (let x = 0; x < tw; x++) {
          // float32 as torch computes it: ToTensor's x / 255, then (x - mean) / std
          out[plane + y * tw + x] = Math.fround(Math.fround(pixels[row + x * 3] / 255) - mean[c]) / std[c];
        }
      }
    }
    return out;
  }

  // ---- outputs -> results, as the Python post-processing does ----------------------------------
  function topK(logits, k) {
    const max = Math.max(...logits);
    const exps = Array.from(logits, (v) => Math.exp(v - max));
    const total = exps.reduce((a, b) => a + b, 0);
    const order = exps.map((e, i) => [e / total, i]).sort((a, b) => b[0] - a[0]).slice(0, k);
    return order.map(([prob, index]) => ({ index, label: label(index), prob }));
  }
  const label = (i) => (api.config.labels ? api.config.labels[i] : `class ${i}`);

  function selectDetections(boxes, scores, anchors, classes, settings) {
    // select_detections (edgenext.dense.ssdlite): per class above the threshold, NMS, per-class and image caps
    const f = Math.fround;
    let cand = [];
    for (let a = 0; a < anchors; a++) {
      for (let c = 1; c < classes; c++) {
        const s = scores[a * classes + c];
        if (s > settings.score_thresh) cand.push({ a, c, s });
      }
    }
    if (settings.topk_candidates > 0) {
      const byClass = new Map();
      for (const d of cand) { if (!byClass.has(d.c)) byClass.set(d.c, []); byClass.get(d.c).push(d); }
      cand = [...byClass.keys()].sort((x, y) => x - y)
        .flatMap((c) => byClass.get(c).sort((x, y) => y.s - x.s).slice(0, settings.topk_candidates));
    }
    // torchvision's batched_nms: per class, as the offset trick (float32) or one NMS per class
    const trick = cand.length * 4 <= 4000;
    let maxCoord = -Infinity;
    for (const d of cand) for (let j = 0; j < 4; j++) maxCoord = Math.max(maxCoord, boxes[d.a * 4 + j]);
    const nmsBoxes = cand.map((d) => {
      const off = trick ? f(d.c * f(maxCoord + 1)) : 0;
      return [0, 1, 2, 3].map((j) => f(boxes[d.a * 4 + j] + off));
    });
    const order = cand.map((_, i) => i).sort((x, y) => cand[y].s - cand[x].s);
    const areas = nmsBoxes.map((b) => f(f(b[2] - b[0]) * f(b[3] - b[1])));
    const suppressed = new Uint8Array(cand.length);
    const kept = [];
    for (let oi = 0; oi < order.length; oi++) {
      const i = order[oi];
      if (suppressed[i]) continue;
      kept.push(i);
      const bi = nmsBoxes[i];
      for (let oj = oi + 1; oj < order.length; oj++) {
        const j = order[oj];
        if (suppressed[j] || (!trick && cand[j].c !== cand[i].c)) continue;
        const bj = nmsBoxes[j];
        const iw = Math.max(0, f(Math.min(bi[2], bj[2]) - Math.max(bi[0], bj[0])));
        const ih = Math.max(0, f(Math.min(bi[3], bj[3]) - Math.max(bi[1], bj[1])));
        const inter = f(iw * ih);
        if (f(inter / f(f(areas[i] + areas[j]) - inter)) > settings.nms_thresh) suppressed[j] = 1;
      }
    }
    const perClass = new Map();
    let out = kept.filter((i) => {
      const n = (perClass.get(cand[i].c) || 0) + 1;
      perClass.set(cand[i].c, n);
      return settings.detections_per_class <= 0 || n <= settings.detections_per_class;
    });
    if (settings.detections_per_img > 0) out = out.slice(0, settings.detections_per_img);
    return out.map((i) => ({ a: cand[i].a, index: cand[i].c, score: cand[i].s }));
  }

  function detections(outputs, width, height) {
    const byRole = (role) => outputs[api.config.outputs.find((o) => o.role === role).name];
    const boxesT = byRole('boxes'), scoresT = byRole('scores');
    const [, anchors, classes] = scoresT.dims;
    const [, , ih, iw] = api.config.input.shape;
    const f = Math.fround, rw = f(width / iw), rh = f(height / ih);
    const found = selectDetections(boxesT.data, scoresT.data, anchors, classes, api.config.postprocess);
    return found.map(({ a, index, score }) => {
      const b = boxesT.data.subarray(a * 4, a * 4 + 4);
      return { index, label: label(index), score, box: [f(b[0] * rw), f(b[1] * rh), f(b[2] * rw), f(b[3] * rh)] };
    });
  }

  function segmentation(outputs, width, height) {
    // logits (1, C, h, w) upsampled bilinearly (align_corners=False, as torch) to the image, then arg-max
    const t = outputs[api.config.outputs[0].name];
    const [, classes, h, w] = t.dims;
    const data = t.data, plane = h * w, f = Math.fround;
    const mask = new Uint8Array(width * height);
    const axis = (inSize, outSize) => {
      const scale = f(inSize / outSize), i0 = new Int32Array(outSize), i1 = new Int32Array(outSize);
      const l1 = new Float32Array(outSize);
      for (let d = 0; d < outSize; d++) {
        const real = Math.max(f(f(scale * f(d + 0.5)) - 0.5), 0);
        i0[d] = Math.min(Math.floor(real), inSize - 1);
        i1[d] = Math.min(i0[d] + 1, inSize - 1);
        l1[d] = Math.min(Math.max(f(real - i0[d]), 0), 1);
      }
      return { i0, i1, l1 };
    };
    const ys = axis(h, height), xs = axis(w, width);
    const counts = new Array(classes).fill(0);
    for (let y = 0; y < height; y++) {
      const r0 = ys.i0[y] * w, r1 = ys.i1[y] * w, wy1 = ys.l1[y], wy0 = f(1 - wy1);
      for (let x = 0; x < width; x++) {
        const c0 = xs.i0[x], c1 = xs.i1[x], wx1 = xs.l1[x], wx0 = f(1 - wx1);
        let best = 0, bestValue = -Infinity;
        for (let c = 0, o = 0; c < classes; c++, o += plane) {
          const v = wy0 * (wx0 * data[o + r0 + c0] + wx1 * data[o + r0 + c1]) +
                    wy1 * (wx0 * data[o + r1 + c0] + wx1 * data[o + r1 + c1]);
          if (v > bestValue) { bestValue = v; best = c; }
        }
        mask[y * width + x] = best;
        counts[best] += 1;
      }
    }
    const classesFound = counts.map((n, index) => ({ index, label: label(index), pixels: n, fraction: n / (width * height) }))
      .filter((c) => c.pixels > 0);
    return { mask, classes: classesFound };
  }

  // ---- drawing ------------------------------------------------------------------------------
  function vocColor(index) {  // Pascal VOC's colour map, as edgenext.inference.dense.class_colors
    const rgb = [0, 0, 0];
    for (let bit = 7, c = index; bit >= 0; bit--, c >>= 3) for (let ch = 0; ch < 3; ch++) rgb[ch] |= ((c >> ch) & 1) << bit;
    return rgb;
  }
  const css = (rgb, alpha = 1) => `rgba(${rgb[0]}, ${rgb[1]}, ${rgb[2]}, ${alpha})`;

  function draw(result) {
    const { canvas, bitmap, width, height } = result.view;
    const scale = canvas.width / width;
    const ctx = canvas.getContext('2d');
    ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    if (result.mask) {
      if (!result.view.overlay) result.view.overlay = maskCanvas(result.mask, width, height);
      ctx.globalAlpha = Number($('opacity').value);
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(result.view.overlay, 0, 0, canvas.width, canvas.height);
      ctx.globalAlpha = 1;
    }
    if (result.detections) {
      const min = Number($('score').value);
      const line = Math.max(2, Math.round(Math.min(canvas.width, canvas.height) / 200));
      ctx.font = `${Math.max(12, line * 6)}px system-ui, sans-serif`;
      for (const d of result.detections.filter((x) => x.score >= min)) {
        const [x1, y1, x2, y2] = d.box.map((v) => v * scale);
        ctx.strokeStyle = ctx.fillStyle = css(vocColor(d.index));
        ctx.lineWidth = line;
        ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
        const text = `${d.label} ${d.score.toFixed(2)}`;
        const tw = ctx.measureText(text).width + 6, th = line * 6 + 4;
        const ty = y1 - th >= 0 ? y1 - th : y1;
        ctx.fillRect(x1, ty, tw, th);
        ctx.fillStyle = '#fff';
        ctx.fillText(text, x1 + 3, ty + th - 4);
      }
      result.view.list.replaceChildren(...result.detections.filter((x) => x.score >= min).slice(0, 20)
        .map((d) => item(`${d.label}`, `${(100 * d.score).toFixed(1)}%`, vocColor(d.index))));
    }
  }

  function maskCanvas(mask, width, height) {
    const canvas = new OffscreenCanvas(width, height);
    const ctx = canvas.getContext('2d');
    const image = ctx.createImageData(width, height);
    const colors = new Map();
    for (let p = 0; p < mask.length; p++) {
      const c = mask[p];
      if (c === 0) continue;  // the background stays clear
      if (!colors.has(c)) colors.set(c, vocColor(c));
      const rgb = colors.get(c);
      image.data.set([rgb[0], rgb[1], rgb[2], 255], p * 4);
    }
    ctx.putImageData(image, 0, 0);
    return canvas;
  }

  function item(name, value, rgb) {
    const li = document.createElement('li');
    if (rgb) { const sw = document.createElement('span'); sw.className = 'swatch'; sw.style.background = css(rgb); li.append(sw); }
    const n = document.createElement('span'); n.className = 'name'; n.textContent = name;
    const v = document.createElement('span'); v.className = 'value'; v.textContent = value;
    li.append(n, v);
    return li;
  }

  function card(result, bitmap) {
    const article = document.createElement('article');
    article.className = 'result';
    const heading = document.createElement('h3');
    heading.textContent = result.name;
    // drawn at 480-1024 px on its long side: small images scaled up so labels stay legible, large ones down
    const longest = Math.max(result.width, result.height);
    const scale = Math.min(1024, Math.max(480, longest)) / longest;
    const canvas = document.createElement('canvas');
    canvas.width = Math.max(1, Math.round(result.width * scale));
    canvas.height = Math.max(1, Math.round(result.height * scale));
    canvas.setAttribute('role', 'img');
    const list = document.createElement('ol');
    list.className = 'list';
    const meta = document.createElement('p');
    meta.className = 'meta';
    meta.textContent = `${result.latency_ms.toFixed(1)} ms in the model (${result.total_ms.toFixed(1)} ms in all), ` +
      `${result.backend}, ${result.width} x ${result.height} px`;
    article.append(heading, canvas, list, meta);
    result.view = { canvas, bitmap, list, width: result.width, height: result.height };
    if (result.top) {
      list.append(...result.top.map((t) => item(t.label, `${(100 * t.prob).toFixed(1)}%`)));
      canvas.setAttribute('aria-label', `${result.name}: ${result.top[0].label}`);
    } else if (result.classes) {
      list.append(...result.classes.filter((c) => c.index !== 0)
        .map((c) => item(c.label, `${(100 * c.fraction).toFixed(1)}% of pixels`, vocColor(c.index))));
      canvas.setAttribute('aria-label', `${result.name}: class mask`);
    } else {
      canvas.setAttribute('aria-label', `${result.name}: ${result.detections.length} detections`);
    }
    draw(result);
    $('results').prepend(article);
  }

  // ---- running images ---------------------------------------------------------------------------
  function inputTensor(data) {
    return new ort.Tensor('float32', data, api.config.input.shape);
  }

  async function infer(image) {
    const start = performance.now();
    const input = preprocess(image.rgb, image.width, image.height);
    const t0 = performance.now();
    const outputs = await session.run({ [api.config.input.name]: inputTensor(input) });
    const latency = performance.now() - t0;
    const result = { name: image.name, task: api.config.task, width: image.width, height: image.height,
                     backend: api.backend, threads: api.threads };
    if (api.config.task === 'classify') result.top = topK(outputs[api.config.outputs[0].name].data, 5);
    else if (api.config.task === 'detect') result.detections = detections(outputs, image.width, image.height);
    else Object.assign(result, segmentation(outputs, image.width, image.height));
    result.latency_ms = latency;
    result.total_ms = performance.now() - start;
    return result;
  }

  async function runImage(image) {
    const result = await infer(image);
    api.results.push(result);
    card(result, image.bitmap);
    publish();
    return result;
  }

  async function runFiles(files) {
    if (!session) { say('The model is not loaded; see the message above.'); return; }
    $('status').textContent = `Running ${files.length} image(s)...`;
    for (const file of files) {
      try {
        const image = await decode(file);
        await runImage({ name: file.name, ...image });
      } catch (err) {
        say(err.message || String(err));
        api.results.push({ name: file.name, error: err.message || String(err) });
        publish();
      }
    }
    $('status').textContent = `${api.results.filter((r) => !r.error).length} image(s) done.`;
  }

  // ---- camera -------------------------------------------------------------------------------------
  let stream = null, shots = 0;
  async function toggleCamera() {
    const video = $('video');
    if (stream) {
      stream.getTracks().forEach((t) => t.stop());
      stream = null;
      video.hidden = $('capture').hidden = true;
      $('camera').textContent = 'Use the camera';
      return;
    }
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment' }, audio: false });
    } catch (err) {
      say(`The camera is not available (${err.message || err.name}); pick or drop images instead.`);
      return;
    }
    video.srcObject = stream;
    video.hidden = $('capture').hidden = false;
    $('camera').textContent = 'Stop the camera';
    $('capture').focus();
  }
  async function capture() {
    const video = $('video');
    const image = pixelsOf(video, video.videoWidth, video.videoHeight);
    image.bitmap = await createImageBitmap(video);
    shots += 1;
    await runImage({ name: `camera ${shots}`, ...image });
  }

  // ---- the page -----------------------------------------------------------------------------------
  function loadScript(src) {
    return new Promise((resolve, reject) => {
      const script = document.createElement('script');
      script.src = src;
      script.onload = resolve;
      script.onerror = () => reject(new Error(`could not load ${src}`));
      document.head.append(script);
    });
  }

  async function chooseBackend(asked) {
    if (asked === 'wasm') return 'wasm';
    const gpu = navigator.gpu ? await navigator.gpu.requestAdapter().catch(() => null) : null;
    if (gpu) return 'webgpu';
    if (asked === 'webgpu') say('WebGPU is not available in this browser; running on WebAssembly.', 'note');
    return 'wasm';
  }

  function describe() {
    const c = api.config;
    const params = c.params ? `${(c.params / 1e6).toFixed(2)} M` : 'unknown';
    const rows = [['Model', c.demo.title], ['Task', c.task], ['Input', `${c.input.shape[3]} x ${c.input.shape[2]} px`],
      ['Parameters', params], ['Precision', c.precision], ['Backend', `${api.backend} (${api.threads} thread${api.threads > 1 ? 's' : ''})`],
      ['Runtime', `ONNX Runtime Web ${c.demo.ort_version}`]];
    $('info').replaceChildren(...rows.flatMap(([k, v]) => {
      const dt = document.createElement('dt'); dt.textContent = k;
      const dd = document.createElement('dd'); dd.textContent = v; dd.dataset.key = k.toLowerCase();
      return [dt, dd];
    }));
    document.title = `${c.demo.title}: EdgeNeXt in the browser`;
    $('title').textContent = `${c.demo.title} in your browser`;
    $('score-control').hidden = c.task !== 'detect';
    $('opacity-control').hidden = c.task !== 'segment';
    if (c.task === 'detect') { $('score').value = c.demo.display_score; $('score-value').textContent = c.demo.display_score; }
  }

  async function boot() {
    setState('loading');
    const params = new URLSearchParams(location.search);
    try {
      const response = await fetch('model.json');
      if (!response.ok) throw new Error(`model.json: HTTP ${response.status}`);
      api.config = await response.json();
    } catch (err) {
      throw new Error(`The model's description could not be loaded (${err.message}); is this an edgenext demo folder?`);
    }
    const demo = api.config.demo;
    api.backend = await chooseBackend(params.get('backend'));
    const cores = navigator.hardwareConcurrency || 1;
    api.threads = crossOriginIsolated ? Number(params.get('threads')) || Math.max(1, Math.min(4, Math.ceil(cores / 2))) : 1;
    if (!crossOriginIsolated) {
      say('This host does not send the cross-origin isolation headers (COOP/COEP), so ONNX Runtime runs on one ' +
          'thread; `edgenext demo` serves the folder with them.', 'note');
    }
    try {
      await loadScript(demo.ort_base + demo.ort_scripts[api.backend]);
    } catch (err) {
      throw new Error(`ONNX Runtime Web could not be loaded (${err.message}).`);
    }
    ort.env.wasm.wasmPaths = new URL(demo.ort_base, location.href).href;
    ort.env.wasm.numThreads = api.threads;
    try {
      session = await ort.InferenceSession.create(demo.model_file, { executionProviders: [api.backend],
                                                                     graphOptimizationLevel: 'all' });
    } catch (err) {
      throw new Error(`The model (${demo.model_file}) could not be loaded by ONNX Runtime Web ${demo.ort_version} ` +
                      `on ${api.backend}: ${err.message || err}`);
    }
    describe();
    $('status').textContent = 'Ready: pick or drop images, or use the camera.';
    setState('ready');
  }

  function wire() {
    const drop = $('drop');
    $('files').addEventListener('change', (e) => { runFiles([...e.target.files]); e.target.value = ''; });
    drop.addEventListener('click', () => $('files').click());
    drop.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); $('files').click(); } });
    drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
    drop.addEventListener('dragleave', () => drop.classList.remove('over'));
    drop.addEventListener('drop', (e) => { e.preventDefault(); drop.classList.remove('over'); runFiles([...e.dataTransfer.files]); });
    $('camera').addEventListener('click', toggleCamera);
    $('capture').addEventListener('click', () => capture().catch((err) => say(err.message)));
    $('camera').hidden = !(navigator.mediaDevices && navigator.mediaDevices.getUserMedia);
    const redraw = () => api.results.forEach((r) => r.view && draw(r));
    $('score').addEventListener('input', () => { $('score-value').textContent = $('score').value; redraw(); });
    $('opacity').addEventListener('input', () => { $('opacity-value').textContent = $('opacity').value; redraw(); });
  }

  // hooks for tests and the browser benchmark
  api.preprocessUrl = async (url) => {
    const blob = await (await fetch(url)).blob();
    const image = await decode(new File([blob], url.split('/').pop(), { type: blob.type }));
    return Array.from(preprocess(image.rgb, image.width, image.height));
  };
  api.bench = async (runs = 20, warmup = 5) => {
    const input = inputTensor(new Float32Array(api.config.input.shape.reduce((a, b) => a * b, 1)).fill(0.5));
    const feeds = { [api.config.input.name]: input };
    for (let i = 0; i < warmup; i++) await session.run(feeds);
    const times = [];
    for (let i = 0; i < runs; i++) { const t0 = performance.now(); await session.run(feeds); times.push(performance.now() - t0); }
    const sorted = [...times].sort((a, b) => a - b);
    const median = runs % 2 ? sorted[(runs - 1) / 2] : (sorted[runs / 2 - 1] + sorted[runs / 2]) / 2;
    return { median_ms: median, times, backend: api.backend, threads: api.threads, isolated: crossOriginIsolated };
  };

  wire();
  api.ready = boot().catch((err) => { say(err.message || String(err)); $('status').textContent = 'Not ready.'; setState('error'); });
})();
