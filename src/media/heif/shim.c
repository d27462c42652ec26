// A small C shim over the system's libheif (Debian: libheif-dev): decodes the primary image of
// a HEIF/AVIF file to interleaved RGB(A), applying its irot/imir transforms, with its colour
// profile and EXIF; encodes interleaved RGB(A) as HEVC or AV1 with a profile and EXIF. Nothing
// else of the file (thumbnails, depth maps, auxiliary images) is ever read back out or written.
#include <libheif/heif.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERR_LEN 200

typedef struct {
  unsigned width, height;
  int has_alpha;
  int bits;         // luma bits per pixel of the primary image
  int av1;          // 1: AV1 (AVIF), 0: HEVC or other
  int images;       // top-level images in the file
} bgh_info;

static int fail(char* err, const char* what, struct heif_error e) {
  snprintf(err, ERR_LEN, "%s: %s", what, e.message ? e.message : "libheif failed");
  return 1;
}

void bgh_free(void* p) { free(p); }

static void* copy(const void* src, size_t len) {
  void* out = malloc(len ? len : 1);
  if (out && len) memcpy(out, src, len);
  return out;
}

// Reads the header: size, alpha, depth, codec, number of images.
int bgh_info_read(const unsigned char* src, size_t len, bgh_info* info, char* err) {
  struct heif_context* ctx = heif_context_alloc();
  struct heif_image_handle* h = NULL;
  struct heif_error e = heif_context_read_from_memory_without_copy(ctx, src, len, NULL);
  int rc = 0;
  if (e.code != heif_error_Ok) { rc = fail(err, "cannot read the HEIF container", e); goto done; }
  e = heif_context_get_primary_image_handle(ctx, &h);
  if (e.code != heif_error_Ok) { rc = fail(err, "no primary image", e); goto done; }
  info->width = (unsigned)heif_image_handle_get_width(h);
  info->height = (unsigned)heif_image_handle_get_height(h);
  info->has_alpha = heif_image_handle_has_alpha_channel(h);
  info->bits = heif_image_handle_get_luma_bits_per_pixel(h);
  info->av1 = heif_main_brand(src, (int)(len < 64 ? len : 64)) == heif_avif;
  info->images = heif_context_get_number_of_top_level_images(ctx);
done:
  if (h) heif_image_handle_release(h);
  heif_context_free(ctx);
  return rc;
}

// Decodes the primary image to interleaved RGB or RGBA, 8 bits, or 16 bits little-endian
// (values 0..2^bits-1) when `deep`. `pixels` (stride bytes a row), `icc` and `exif` (the TIFF
// structure, or NULL) are malloc'd: free them with bgh_free.
int bgh_decode(const unsigned char* src, size_t len, int deep, unsigned char** pixels, size_t* stride,
               unsigned char** icc, size_t* icc_len, unsigned char** exif, size_t* exif_len, char* err) {
  struct heif_context* ctx = heif_context_alloc();
  struct heif_image_handle* h = NULL;
  struct heif_image* img = NULL;
  int rc = 0;
  *pixels = *icc = *exif = NULL;
  *icc_len = *exif_len = 0;
  struct heif_error e = heif_context_read_from_memory_without_copy(ctx, src, len, NULL);
  if (e.code != heif_error_Ok) { rc = fail(err, "cannot read the HEIF container", e); goto done; }
  e = heif_context_get_primary_image_handle(ctx, &h);
  if (e.code != heif_error_Ok) { rc = fail(err, "no primary image", e); goto done; }
  int alpha = heif_image_handle_has_alpha_channel(h);
  enum heif_chroma chroma = deep ? (alpha ? heif_chroma_interleaved_RRGGBBAA_LE : heif_chroma_interleaved_RRGGBB_LE)
                                 : (alpha ? heif_chroma_interleaved_RGBA : heif_chroma_interleaved_RGB);
  e = heif_decode_image(h, &img, heif_colorspace_RGB, chroma, NULL);
  if (e.code != heif_error_Ok) { rc = fail(err, "cannot decode the image", e); goto done; }
  int s = 0;
  const uint8_t* plane = heif_image_get_plane_readonly(img, heif_channel_interleaved, &s);
  int w = heif_image_get_width(img, heif_channel_interleaved);
  int hh = heif_image_get_height(img, heif_channel_interleaved);
  if (!plane || w <= 0 || hh <= 0) { snprintf(err, ERR_LEN, "the decoded image has no pixels"); rc = 1; goto done; }
  size_t row = (size_t)w * (alpha ? 4 : 3) * (deep ? 2 : 1);
  *pixels = malloc(row * (size_t)hh);
  if (!*pixels) { snprintf(err, ERR_LEN, "out of memory"); rc = 1; goto done; }
  for (int y = 0; y < hh; y++) memcpy(*pixels + row * (size_t)y, plane + (size_t)s * (size_t)y, row);
  *stride = row;
  size_t n = heif_image_handle_get_raw_color_profile_size(h);
  if (n > 0) {
    *icc = malloc(n);
    if (*icc && heif_image_handle_get_raw_color_profile(h, *icc).code == heif_error_Ok) *icc_len = n;
  }
  heif_item_id id;
  if (heif_image_handle_get_list_of_metadata_block_IDs(h, "Exif", &id, 1) == 1) {
    size_t m = heif_image_handle_get_metadata_size(h, id);
    unsigned char* block = malloc(m ? m : 1);
    if (block && m > 4 && heif_image_handle_get_metadata(h, id, block).code == heif_error_Ok) {
      // The block starts with the offset of the TIFF header after these four bytes.
      size_t off = ((size_t)block[0] << 24) | ((size_t)block[1] << 16) | ((size_t)block[2] << 8) | block[3];
      if (4 + off < m) {
        *exif = copy(block + 4 + off, m - 4 - off);
        *exif_len = m - 4 - off;
      }
    }
    free(block);
  }
done:
  if (rc && *pixels) { free(*pixels); *pixels = NULL; }
  if (img) heif_image_release(img);
  if (h) heif_image_handle_release(h);
  heif_context_free(ctx);
  return rc;
}

typedef struct {
  unsigned char* data;
  size_t len, cap;
} buffer;

static struct heif_error append(struct heif_context* ctx, const void* data, size_t size, void* userdata) {
  (void)ctx;
  buffer* b = userdata;
  struct heif_error ok = {heif_error_Ok, heif_suberror_Unspecified, "ok"};
  struct heif_error oom = {heif_error_Encoding_error, heif_suberror_Unspecified, "out of memory"};
  if (b->len + size > b->cap) {
    size_t cap = (b->len + size) * 2;
    unsigned char* grown = realloc(b->data, cap);
    if (!grown) return oom;
    b->data = grown;
    b->cap = cap;
  }
  memcpy(b->data + b->len, data, size);
  b->len += size;
  return ok;
}

// Encodes interleaved RGB(A) (8 bits, or 16-bit little-endian samples of `bits` bits) as HEVC
// (av1 = 0) or AV1 at `quality` (0..100). `out` is malloc'd: free it with bgh_free.
int bgh_encode(const unsigned char* pixels, unsigned w, unsigned h, size_t stride, int has_alpha, int bits, int av1,
               int quality, const unsigned char* icc, size_t icc_len, const unsigned char* exif, size_t exif_len,
               unsigned char** out, size_t* out_len, char* err) {
  struct heif_context* ctx = heif_context_alloc();
  struct heif_encoder* enc = NULL;
  struct heif_image* img = NULL;
  struct heif_image_handle* handle = NULL;
  buffer b = {NULL, 0, 0};
  int rc = 0;
  *out = NULL;
  *out_len = 0;
  int deep = bits > 8;
  struct heif_error e = heif_context_get_encoder_for_format(ctx, av1 ? heif_compression_AV1 : heif_compression_HEVC, &enc);
  if (e.code != heif_error_Ok) { rc = fail(err, "no encoder for this format", e); goto done; }
  heif_encoder_set_lossy_quality(enc, quality);
  // The encoders' default effort takes tens of seconds for a 12 MP photo (x265's "medium":
  // 25 s for an iPhone HEIC here, "ultrafast": 2.9 s, the same quality setting).
  heif_encoder_set_parameter_string(enc, av1 ? "speed" : "preset", av1 ? "8" : "ultrafast");
  enum heif_chroma chroma = deep ? (has_alpha ? heif_chroma_interleaved_RRGGBBAA_LE : heif_chroma_interleaved_RRGGBB_LE)
                                 : (has_alpha ? heif_chroma_interleaved_RGBA : heif_chroma_interleaved_RGB);
  e = heif_image_create((int)w, (int)h, heif_colorspace_RGB, chroma, &img);
  if (e.code != heif_error_Ok) { rc = fail(err, "cannot create the image", e); goto done; }
  e = heif_image_add_plane(img, heif_channel_interleaved, (int)w, (int)h, bits);
  if (e.code != heif_error_Ok) { rc = fail(err, "cannot create the image plane", e); goto done; }
  int s = 0;
  uint8_t* plane = heif_image_get_plane(img, heif_channel_interleaved, &s);
  size_t row = (size_t)w * (has_alpha ? 4 : 3) * (deep ? 2 : 1);
  for (unsigned y = 0; y < h; y++) memcpy(plane + (size_t)s * y, pixels + stride * y, row);
  if (icc && icc_len) heif_image_set_raw_color_profile(img, "prof", icc, icc_len);
  e = heif_context_encode_image(ctx, img, enc, NULL, &handle);
  if (e.code != heif_error_Ok) { rc = fail(err, "cannot encode the image", e); goto done; }
  if (exif && exif_len) {
    e = heif_context_add_exif_metadata(ctx, handle, exif, (int)exif_len);
    if (e.code != heif_error_Ok) { rc = fail(err, "cannot add the EXIF block", e); goto done; }
  }
  struct heif_writer writer = {1, append};
  e = heif_context_write(ctx, &writer, &b);
  if (e.code != heif_error_Ok) { rc = fail(err, "cannot write the file", e); goto done; }
  *out = b.data;
  *out_len = b.len;
  b.data = NULL;
done:
  free(b.data);
  if (handle) heif_image_handle_release(handle);
  if (img) heif_image_release(img);
  if (enc) heif_encoder_release(enc);
  heif_context_free(ctx);
  return rc;
}
