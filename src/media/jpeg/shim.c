/* The few libjpeg(-turbo) calls blurgate needs, behind plain C functions so that the Rust side
 * never touches libjpeg's structs (their layout belongs to the installed library).
 *
 * Every function returns 0 on success and -1 on failure with a message in `err` (BGJ_ERR bytes).
 * libjpeg reports errors by calling error_exit, which here longjmps back to the function that
 * called into it. Warnings (corrupt data that libjpeg would paper over, such as a cut-off scan
 * it fills with grey) count as errors: the caller then falls back to the general decoder, which
 * refuses such files. */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
/* The entropy coder's interface: regions trade blocks with the held coefficients through it. */
#include <jpegint.h>

#define BGJ_ERR 200

struct bgj_err {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    char *msg;
};

static void on_error(j_common_ptr c) {
    struct bgj_err *e = (struct bgj_err *)c->err;
    char text[JMSG_LENGTH_MAX];
    (*c->err->format_message)(c, text);
    snprintf(e->msg, BGJ_ERR, "%s", text);
    longjmp(e->jump, 1);
}

static void on_message(j_common_ptr c, int level) {
    if (level < 0) on_error(c);
}

static void init_err(struct bgj_err *e, char *msg) {
    jpeg_std_error(&e->pub);
    e->pub.error_exit = on_error;
    e->pub.emit_message = on_message;
    e->msg = msg;
}

static void open_src(j_decompress_ptr d, struct bgj_err *e, char *err, const unsigned char *src,
                     unsigned long len, unsigned long max_memory) {
    init_err(e, err);
    d->err = &e->pub;
    jpeg_create_decompress(d);
    d->mem->max_memory_to_use = (long)max_memory;
    jpeg_mem_src(d, src, len);
}

static void open_dst(j_compress_ptr c, struct bgj_err *e, char *err) {
    init_err(e, err);
    c->err = &e->pub;
    jpeg_create_compress(c);
}

/* Sets `dst` to write into memory with `src`'s quantisation tables, sampling and colour space,
 * no APPn markers and standard Huffman tables. Call after setting dst's setjmp: it can fail. */
static void with_params_of(j_decompress_ptr src, j_compress_ptr dst, unsigned char **buf, unsigned long *size) {
    jpeg_mem_dest(dst, buf, size);
    jpeg_copy_critical_parameters(src, dst);
    dst->write_JFIF_header = FALSE;
    dst->write_Adobe_marker = FALSE;
    dst->optimize_coding = FALSE;
}

typedef struct {
    unsigned width, height;
    /* 8-bit Huffman-coded YCbCr or greyscale with common sampling and usable quantisation
     * tables: what the block-level rewrite handles. */
    int supported;
    /* iMCU size in pixels: regions are read and replaced in whole iMCUs. */
    unsigned mcu_w, mcu_h;
} bgj_header;

/* Does every component have a quantisation table with no zero entry? Decoders accept zeros,
 * but libjpeg's encoder divides by them (SIGFPE), so such a photo is never re-encoded here. */
static int usable_quant_tables(JQUANT_TBL *const *tables, const jpeg_component_info *comps, int n) {
    for (int ci = 0; ci < n; ci++) {
        int no = comps[ci].quant_tbl_no;
        if (no < 0 || no >= NUM_QUANT_TBLS || !tables[no]) return 0;
        for (int k = 0; k < DCTSIZE2; k++)
            if (tables[no]->quantval[k] == 0) return 0;
    }
    return 1;
}

/* Luma sampled 1 or 2, chroma 1: 4:4:4, 4:2:2, 4:4:0 and 4:2:0, what cameras write and every
 * decoder reads. Other factors are legal but rare, and some decoders refuse them. */
static int common_sampling(const jpeg_component_info *comps, int n) {
    for (int ci = 0; ci < n; ci++) {
        int h = comps[ci].h_samp_factor, v = comps[ci].v_samp_factor;
        if (ci == 0 ? (h < 1 || h > 2 || v < 1 || v > 2) : (h != 1 || v != 1)) return 0;
    }
    return 1;
}

static void fill_header(j_decompress_ptr d, bgj_header *h) {
    h->width = d->image_width;
    h->height = d->image_height;
    h->supported = d->data_precision == 8 && !d->arith_code &&
                   usable_quant_tables(d->quant_tbl_ptrs, d->comp_info, d->num_components) &&
                   common_sampling(d->comp_info, d->num_components) &&
                   ((d->jpeg_color_space == JCS_YCbCr && d->num_components == 3) ||
                    (d->jpeg_color_space == JCS_GRAYSCALE && d->num_components == 1));
    h->mcu_w = DCTSIZE * d->max_h_samp_factor;
    h->mcu_h = DCTSIZE * d->max_v_samp_factor;
}

int bgj_read_header(const unsigned char *src, unsigned long len, bgj_header *h, char *err) {
    struct jpeg_decompress_struct d;
    struct bgj_err e;
    open_src(&d, &e, err, src, len, 64UL << 20);
    if (setjmp(e.jump)) {
        jpeg_destroy_decompress(&d);
        return -1;
    }
    jpeg_read_header(&d, TRUE);
    fill_header(&d, h);
    jpeg_destroy_decompress(&d);
    return 0;
}

/* Reads the next `rows` output rows (RGB) into `out`. */
static int read_rows(j_decompress_ptr d, unsigned rows, unsigned char *out, unsigned long out_cap, char *err) {
    unsigned long stride = (unsigned long)d->output_width * 3;
    if (stride * rows > out_cap) {
        snprintf(err, BGJ_ERR, "output buffer too small");
        return -1;
    }
    for (unsigned r = 0; r < rows; r++) {
        JSAMPROW row = out + (unsigned long)r * stride;
        if (jpeg_read_scanlines(d, &row, 1) != 1) {
            snprintf(err, BGJ_ERR, "image data ends early");
            return -1;
        }
    }
    return 0;
}

/* RGB pixels of the whole photo; `out` receives out_w * out_h * 3 bytes. */
int bgj_decode(const unsigned char *src, unsigned long len, unsigned long max_memory, unsigned char *out,
               unsigned long out_cap, unsigned *out_w, unsigned *out_h, char *err) {
    struct jpeg_decompress_struct d;
    struct bgj_err e;
    open_src(&d, &e, err, src, len, max_memory);
    if (setjmp(e.jump)) {
        jpeg_destroy_decompress(&d);
        return -1;
    }
    jpeg_read_header(&d, TRUE);
    d.out_color_space = JCS_RGB;
    jpeg_start_decompress(&d);
    if (read_rows(&d, d.output_height, out, out_cap, err) != 0) {
        jpeg_destroy_decompress(&d);
        return -1;
    }
    *out_w = d.output_width;
    *out_h = d.output_height;
    jpeg_destroy_decompress(&d);
    return 0;
}

/* A photo's quantised DCT coefficients, held in memory so that regions can be replaced and the
 * whole written again without decoding or re-encoding anything else. */
typedef struct {
    struct jpeg_decompress_struct d;
    struct bgj_err e;
    jvirt_barray_ptr *arrays;
} bgj_coefs;

/* Reads the photo's coefficients and, from them, its RGB pixels scaled by scale_num/8 into
 * `out` (out_w * out_h * 3 bytes): one pass over the compressed data for both. Buffered-image
 * mode keeps every coefficient in memory and decodes the output from there; libjpeg then hands
 * out those coefficients as jpeg_read_coefficients would. */
static int read_coefs(bgj_coefs *c, const unsigned char *src, unsigned long len, unsigned long max_memory,
                      int scale_num, unsigned char *out, unsigned long out_cap, unsigned *out_w, unsigned *out_h,
                      char *err) {
    j_decompress_ptr d = &c->d;
    open_src(d, &c->e, err, src, len, max_memory);
    if (setjmp(c->e.jump)) {
        jpeg_destroy_decompress(d);
        return -1;
    }
    jpeg_read_header(d, TRUE);
    d->buffered_image = TRUE;
    d->out_color_space = JCS_RGB;
    d->scale_num = (unsigned)scale_num;
    d->scale_denom = 8;
    jpeg_start_decompress(d);
    int status;
    while ((status = jpeg_consume_input(d)) != JPEG_REACHED_EOI) {
        if (status == JPEG_SUSPENDED) {
            snprintf(err, BGJ_ERR, "image data ends early");
            jpeg_destroy_decompress(d);
            return -1;
        }
    }
    jpeg_start_output(d, d->input_scan_number);
    if (read_rows(d, d->output_height, out, out_cap, err) != 0) {
        jpeg_destroy_decompress(d);
        return -1;
    }
    jpeg_finish_output(d);
    *out_w = d->output_width;
    *out_h = d->output_height;
    c->arrays = jpeg_read_coefficients(d);
    if (!c->arrays) {
        snprintf(err, BGJ_ERR, "libjpeg kept no coefficients");
        jpeg_destroy_decompress(d);
        return -1;
    }
    return 0;
}

bgj_coefs *bgj_coefs_open(const unsigned char *src, unsigned long len, unsigned long max_memory, int scale_num,
                          unsigned char *out, unsigned long out_cap, unsigned *out_w, unsigned *out_h, char *err) {
    bgj_coefs *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, BGJ_ERR, "out of memory");
        return NULL;
    }
    if (read_coefs(c, src, len, max_memory, scale_num, out, out_cap, out_w, out_h, err) != 0) {
        free(c);
        return NULL;
    }
    return c;
}

void bgj_coefs_close(bgj_coefs *c) {
    if (!c) return;
    jpeg_destroy_decompress(&c->d);
    free(c);
}

/* A region of the held photo, run through a second libjpeg object as if it were a photo of its
 * own, whose entropy coder is swapped for a copy from or to the held blocks: libjpeg's colour
 * conversion, sampling and DCT do the work, and nothing is Huffman-coded or parsed again. */
typedef struct {
    bgj_coefs *c;
    /* The region's origin in the held photo, on the iMCU grid. */
    unsigned x0, y0;
    /* MCUs the swapped coder has passed, in libjpeg's order (left to right, top to bottom). */
    JDIMENSION mcu;
    /* Encoding: a byte per iMCU of the region, row by row; non-zero keeps the held blocks. */
    const unsigned char *keep;
    unsigned keep_stride;
    /* The held block row last fetched per component and row of an MCU (row + 1; 0: none). The
     * held arrays lie wholly in memory (this libjpeg has no backing store: a photo too large
     * fails to open), so a fetched row stays where it is. */
    JDIMENSION row_of[MAX_COMPONENTS][MAX_SAMP_FACTOR];
    JBLOCKROW rows[MAX_COMPONENTS][MAX_SAMP_FACTOR];
} region;

/* Copies the blocks of one MCU of the region's object (`scan`: its components in the scan)
 * from the held photo (decoding) or into it (encoding, where `keep` allows). Padding blocks,
 * beyond the region or the photo, are left alone. */
static void trade_mcu(region *r, jpeg_component_info *const *scan, int n, JDIMENSION per_row, JBLOCKROW *blocks,
                      int encoding) {
    j_decompress_ptr d = &r->c->d;
    JDIMENSION mcu_row = r->mcu / per_row, mcu_col = r->mcu % per_row;
    r->mcu++;
    int blkn = 0;
    for (int i = 0; i < n; i++) {
        const jpeg_component_info *rc = scan[i];
        int ci = rc->component_index;
        const jpeg_component_info *hc = &d->comp_info[ci];
        JDIMENSION bx0 = r->x0 / (DCTSIZE * d->max_h_samp_factor) * hc->h_samp_factor;
        JDIMENSION by0 = r->y0 / (DCTSIZE * d->max_v_samp_factor) * hc->v_samp_factor;
        for (int y = 0; y < rc->MCU_height; y++, blkn += rc->MCU_width) {
            JDIMENSION by = mcu_row * rc->MCU_height + y;
            if (by >= rc->height_in_blocks || by0 + by >= hc->height_in_blocks) continue;
            if (r->row_of[ci][y] != by0 + by + 1) {
                r->rows[ci][y] = (*d->mem->access_virt_barray)((j_common_ptr)d, r->c->arrays[ci], by0 + by, 1, encoding)[0];
                r->row_of[ci][y] = by0 + by + 1;
            }
            JBLOCKROW held = r->rows[ci][y];
            for (int x = 0; x < rc->MCU_width; x++) {
                JDIMENSION bx = mcu_col * rc->MCU_width + x;
                if (bx >= rc->width_in_blocks || bx0 + bx >= hc->width_in_blocks) continue;
                if (!encoding)
                    memcpy(blocks[blkn + x], held[bx0 + bx], sizeof(JBLOCK));
                else if (!r->keep[(size_t)(by / hc->v_samp_factor) * r->keep_stride + bx / hc->h_samp_factor])
                    memcpy(held[bx0 + bx], blocks[blkn + x], sizeof(JBLOCK));
            }
        }
    }
}

static boolean encode_into_held(j_compress_ptr p, JBLOCKROW *blocks) {
    trade_mcu(p->client_data, p->cur_comp_info, p->comps_in_scan, p->MCUs_per_row, blocks, 1);
    return TRUE;
}

static boolean decode_from_held(j_decompress_ptr q, JBLOCKROW *blocks) {
    trade_mcu(q->client_data, q->cur_comp_info, q->comps_in_scan, q->MCUs_per_row, blocks, 0);
    return TRUE;
}

/* Is (x0, y0, w, h) a region of the photo on its iMCU grid (right and bottom edges too, unless
 * they are the photo's)? */
static int on_grid(j_decompress_ptr d, unsigned x0, unsigned y0, unsigned w, unsigned h, char *err) {
    unsigned mw = DCTSIZE * d->max_h_samp_factor, mh = DCTSIZE * d->max_v_samp_factor;
    if (x0 % mw || y0 % mh || (w % mw && x0 + w != d->image_width) || (h % mh && y0 + h != d->image_height) ||
        x0 + w > d->image_width || y0 + h > d->image_height || w == 0 || h == 0) {
        snprintf(err, BGJ_ERR, "region not aligned to the image's blocks");
        return 0;
    }
    return 1;
}

/* Starts `p` compressing an RGB photo of w x h into memory with the held photo's quantisation
 * tables, sampling and colour space, so that its blocks line up with the photo's. The frame and
 * scan headers are written by the time it returns. */
static int start_region(bgj_coefs *c, j_compress_ptr p, unsigned w, unsigned h, unsigned char **buf,
                        unsigned long *size, char *err) {
    with_params_of(&c->d, p, buf, size);
    p->image_width = w;
    p->image_height = h;
    p->in_color_space = JCS_RGB;
    p->input_components = 3;
    p->dct_method = JDCT_ISLOW;
    if (!usable_quant_tables(p->quant_tbl_ptrs, p->comp_info, p->num_components)) {
        snprintf(err, BGJ_ERR, "a quantisation table has a zero entry");
        return -1;
    }
    jpeg_start_compress(p, TRUE);
    /* What the first jpeg_write_scanlines would do first. */
    if (p->master->call_pass_startup) (*p->master->pass_startup)(p);
    return 0;
}

/* The RGB pixels of the region (x0, y0, w, h) on the iMCU grid, decoded from the held
 * coefficients as libjpeg decodes the photo, into `out` (rows `stride` bytes apart). One iMCU
 * more on each side is decoded and dropped, so that chroma upsampling at the region's edges
 * sees the photo's neighbouring samples, not its own edge repeated. */
int bgj_coefs_decode(bgj_coefs *c, unsigned x0, unsigned y0, unsigned w, unsigned h, unsigned char *out,
                     unsigned long stride, char *err) {
    struct jpeg_compress_struct p;
    struct jpeg_decompress_struct q;
    struct bgj_err pe, qe;
    unsigned char *volatile buf = NULL, *volatile header = NULL, *volatile row = NULL;
    unsigned long size = 0;
    volatile int q_created = 0;
    j_decompress_ptr d = &c->d;
    unsigned mw = DCTSIZE * d->max_h_samp_factor, mh = DCTSIZE * d->max_v_samp_factor;
    unsigned ex0 = x0 >= mw ? x0 - mw : 0, ey0 = y0 >= mh ? y0 - mh : 0;
    unsigned ex1 = x0 + w + mw < d->image_width ? x0 + w + mw : d->image_width;
    unsigned ey1 = y0 + h + mh < d->image_height ? y0 + h + mh : d->image_height;
    region r = {c, ex0, ey0, 0, NULL, 0, {{0}}, {{0}}};
    open_dst(&p, &pe, err);
    c->e.msg = err;
    if (setjmp(pe.jump)) goto fail;
    if (setjmp(c->e.jump)) goto fail;
    if (!on_grid(d, x0, y0, w, h, err)) goto fail;
    /* The headers of a photo the size of the widened region, then EOI: its scan data never
     * comes from the stream. */
    if (start_region(c, &p, ex1 - ex0, ey1 - ey0, (unsigned char **)&buf, &size, err) != 0) goto fail;
    size_t header_len = (size_t)(p.dest->next_output_byte - buf);
    header = malloc(header_len + 2);
    row = malloc((size_t)(ex1 - ex0) * 3);
    if (!header || !row) {
        snprintf(err, BGJ_ERR, "out of memory");
        goto fail;
    }
    memcpy(header, buf, header_len);
    header[header_len] = 0xFF;
    header[header_len + 1] = JPEG_EOI;

    init_err(&qe, err);
    q.err = &qe.pub;
    jpeg_create_decompress(&q);
    q_created = 1;
    if (setjmp(qe.jump)) goto fail;
    jpeg_mem_src(&q, header, header_len + 2);
    jpeg_read_header(&q, TRUE);
    q.out_color_space = JCS_RGB;
    jpeg_start_decompress(&q);
    q.client_data = &r;
    q.entropy->decode_mcu = decode_from_held;
    for (unsigned y = ey0; y < y0 + h; y++) {
        JSAMPROW rows = row;
        if (jpeg_read_scanlines(&q, &rows, 1) != 1) {
            snprintf(err, BGJ_ERR, "region decoding stopped early");
            goto fail;
        }
        if (y >= y0) memcpy(out + (unsigned long)(y - y0) * stride, row + (size_t)(x0 - ex0) * 3, (size_t)w * 3);
    }
    jpeg_destroy_decompress(&q);
    jpeg_destroy_compress(&p);
    free(buf);
    free(header);
    free(row);
    return 0;
fail:
    if (q_created) jpeg_destroy_decompress(&q);
    jpeg_destroy_compress(&p);
    free(buf);
    free(header);
    free(row);
    return -1;
}

/* Replaces the blocks of the region (x0, y0, w, h) on the iMCU grid with `rgb` (rows `stride`
 * bytes apart), encoded with the photo's own quantisation tables and sampling. `keep` has a
 * byte per iMCU of the region (row by row, ceil(w / iMCU width) to a row): the iMCUs where it
 * is non-zero keep their coefficients. */
int bgj_coefs_replace(bgj_coefs *c, unsigned x0, unsigned y0, unsigned w, unsigned h, const unsigned char *rgb,
                      unsigned long stride, const unsigned char *keep, char *err) {
    struct jpeg_compress_struct p;
    struct bgj_err pe;
    unsigned char *volatile buf = NULL;
    unsigned long size = 0;
    j_decompress_ptr d = &c->d;
    region r = {c, x0, y0, 0, keep, (w + DCTSIZE * d->max_h_samp_factor - 1) / (DCTSIZE * d->max_h_samp_factor),
                {{0}}, {{0}}};
    open_dst(&p, &pe, err);
    c->e.msg = err;
    if (setjmp(pe.jump)) goto fail;
    if (setjmp(c->e.jump)) goto fail;
    if (!on_grid(d, x0, y0, w, h, err)) goto fail;
    if (start_region(c, &p, w, h, (unsigned char **)&buf, &size, err) != 0) goto fail;
    p.client_data = &r;
    p.entropy->encode_mcu = encode_into_held;
    while (p.next_scanline < h) {
        JSAMPROW row = (JSAMPROW)(rgb + (unsigned long)p.next_scanline * stride);
        jpeg_write_scanlines(&p, &row, 1);
    }
    jpeg_finish_compress(&p);
    jpeg_destroy_compress(&p);
    free(buf);
    return 0;
fail:
    jpeg_destroy_compress(&p);
    free(buf);
    return -1;
}

/* Copies every block of `src` (arrays of the photo in `d`) into fresh arrays of `w` turned
 * upright: transposed when `transpose`, then mirrored along the stored x axis (`flip_x`) and y
 * axis (`flip_y`). In the DCT domain a mirror negates the odd frequencies along its axis and a
 * transposition swaps the axes, so no block is decoded; `w` gets the turned size, sampling and
 * quantisation tables. A mirrored axis must hold whole iMCUs, or the partial ones at its end
 * would land at the wrong edge. Returns the new arrays, NULL with a message on failure. */
static jvirt_barray_ptr *turned(j_decompress_ptr d, jvirt_barray_ptr *src, j_compress_ptr w, int transpose,
                                int flip_x, int flip_y, char *err) {
    if ((flip_x && d->image_width % (DCTSIZE * d->max_h_samp_factor)) ||
        (flip_y && d->image_height % (DCTSIZE * d->max_v_samp_factor))) {
        snprintf(err, BGJ_ERR, "a mirrored side is not a whole number of blocks");
        return NULL;
    }
    if (transpose) {
        w->image_width = d->image_height;
        w->image_height = d->image_width;
        for (int ci = 0; ci < w->num_components; ci++) {
            int h = w->comp_info[ci].h_samp_factor;
            w->comp_info[ci].h_samp_factor = w->comp_info[ci].v_samp_factor;
            w->comp_info[ci].v_samp_factor = h;
        }
        for (int t = 0; t < NUM_QUANT_TBLS; t++) {
            JQUANT_TBL *q = w->quant_tbl_ptrs[t];
            if (!q) continue;
            for (int v = 0; v < DCTSIZE; v++)
                for (int u = v + 1; u < DCTSIZE; u++) {
                    UINT16 x = q->quantval[v * DCTSIZE + u];
                    q->quantval[v * DCTSIZE + u] = q->quantval[u * DCTSIZE + v];
                    q->quantval[u * DCTSIZE + v] = x;
                }
        }
    }
    jvirt_barray_ptr *dst = (*w->mem->alloc_small)((j_common_ptr)w, JPOOL_IMAGE, sizeof(jvirt_barray_ptr) * d->num_components);
    for (int ci = 0; ci < d->num_components; ci++) {
        const jpeg_component_info *sc = &d->comp_info[ci], *dc = &w->comp_info[ci];
        JDIMENSION bw = transpose ? sc->height_in_blocks : sc->width_in_blocks;
        JDIMENSION bh = transpose ? sc->width_in_blocks : sc->height_in_blocks;
        JDIMENSION hs = dc->h_samp_factor, vs = dc->v_samp_factor;
        dst[ci] = (*w->mem->request_virt_barray)((j_common_ptr)w, JPOOL_IMAGE, TRUE, (bw + hs - 1) / hs * hs,
                                                 (bh + vs - 1) / vs * vs, vs);
    }
    (*w->mem->realize_virt_arrays)((j_common_ptr)w);
    for (int ci = 0; ci < d->num_components; ci++) {
        const jpeg_component_info *sc = &d->comp_info[ci];
        JDIMENSION sw = sc->width_in_blocks, sh = sc->height_in_blocks;
        JDIMENSION bw = transpose ? sh : sw, bh = transpose ? sw : sh;
        for (JDIMENSION by = 0; by < bh; by++) {
            JBLOCKROW out = (*w->mem->access_virt_barray)((j_common_ptr)w, dst[ci], by, 1, TRUE)[0];
            for (JDIMENSION bx = 0; bx < bw; bx++) {
                JDIMENSION a = transpose ? by : bx, b = transpose ? bx : by;
                JDIMENSION sx = flip_x ? sw - 1 - a : a, sy = flip_y ? sh - 1 - b : b;
                JCOEFPTR from = (*d->mem->access_virt_barray)((j_common_ptr)d, src[ci], sy, 1, FALSE)[0][sx];
                JCOEFPTR to = out[bx];
                for (int v = 0; v < DCTSIZE; v++)
                    for (int u = 0; u < DCTSIZE; u++) {
                        /* Frequencies along the stored axes: (vs, us). */
                        int vs = transpose ? u : v, us = transpose ? v : u;
                        JCOEF c = from[vs * DCTSIZE + us];
                        to[v * DCTSIZE + u] = ((flip_x && (us & 1)) ^ (flip_y && (vs & 1))) ? (JCOEF)-c : c;
                    }
            }
        }
    }
    return dst;
}

/* The photo written again from its coefficients, turned upright as `turned` describes (all
 * zero: as stored): the same image data, entropy-coded afresh (baseline, standard Huffman
 * tables), with no APPn markers (the caller adds the metadata it keeps). `*out` is malloc'd;
 * free it with bgj_free. */
int bgj_coefs_write(bgj_coefs *c, int transpose, int flip_x, int flip_y, unsigned char **out, unsigned long *out_len,
                    char *err) {
    struct jpeg_compress_struct w;
    struct bgj_err we;
    unsigned char *volatile buf = NULL;
    unsigned long size = 0;
    open_dst(&w, &we, err);
    c->e.msg = err;
    if (setjmp(we.jump)) goto fail;
    if (setjmp(c->e.jump)) goto fail;
    with_params_of(&c->d, &w, (unsigned char **)&buf, &size);
    jvirt_barray_ptr *arrays = c->arrays;
    if (transpose || flip_x || flip_y) {
        arrays = turned(&c->d, c->arrays, &w, transpose, flip_x, flip_y, err);
        if (!arrays) goto fail;
    }
    jpeg_write_coefficients(&w, arrays);
    jpeg_finish_compress(&w);
    jpeg_destroy_compress(&w);
    *out = buf;
    *out_len = size;
    return 0;
fail:
    jpeg_destroy_compress(&w);
    free(buf);
    return -1;
}

void bgj_free(void *p) { free(p); }
