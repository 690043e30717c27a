// CImageCodecs — the parts of kdad's image I/O that must be written in C.
//
// libpng and libjpeg report errors by longjmp (and libjpeg's default error handler calls exit()),
// which Swift cannot catch. Every decoder and encoder here guards its library calls with setjmp,
// installs silent error managers (nothing is ever printed), releases everything it allocated on
// every path, and returns a kdad_status plus a human message. libtiff is driven from here too so
// that all three formats share one contract and one float conversion.
#ifndef KDAD_CODECS_H
#define KDAD_CODECS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Outcome of a codec call. Anything but OK comes with a message in `message`.
typedef enum {
    KDAD_STATUS_OK = 0,
    /// The data ends before the image does (a read past the end of the buffer was attempted).
    KDAD_STATUS_TRUNCATED = 1,
    /// The data does not start with this format's signature.
    KDAD_STATUS_BAD_MAGIC = 2,
    /// A valid file of a kind this decoder does not handle (CMYK JPEG, float TIFF, ...).
    KDAD_STATUS_UNSUPPORTED = 3,
    /// The header declares more pixels than the caller's limit; nothing was decoded.
    KDAD_STATUS_TOO_LARGE = 4,
    /// The data is corrupt (bad CRC, bad Huffman code, inconsistent tags, ...).
    KDAD_STATUS_CORRUPT = 5,
    KDAD_STATUS_OUT_OF_MEMORY = 6,
    /// The caller passed inconsistent arguments (a programmer error, e.g. wrong output size).
    KDAD_STATUS_INVALID_ARGUMENT = 7,
} kdad_status;

enum { KDAD_MESSAGE_CAPACITY = 256 };

/// What a decoder learned from the header (and, after a decode, what it produced).
typedef struct {
    uint32_t width;
    uint32_t height;
    /// Channels of the decoded planar output (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA).
    int32_t channels;
    /// Bit depth of the samples in the file: 1/2/4/8/16. Palette images report 8 (their palette
    /// entries are 8-bit); the decoded floats are value / (2^bit_depth - 1).
    int32_t bit_depth;
    /// Human-readable reason when the status is not OK; empty otherwise.
    char message[KDAD_MESSAGE_CAPACITY];
} kdad_image_info;

// Decoders. Each reads the header from `data`, fills `info`, and returns TOO_LARGE when
// width*height exceeds `max_pixels` — before any pixel memory is allocated. If `out` is NULL only
// the header is read. Otherwise `out` must hold exactly width*height*channels floats (`out_count`);
// the image is written planar (channel-major: all of channel 0, then channel 1, ...), each value
// scaled to [0, 1]. Any attempt to read past `size` makes the call fail with TRUNCATED, even if the
// library itself would have tolerated it (libjpeg pads missing data with grey, for example).
kdad_status kdad_png_decode(const uint8_t *data, size_t size, uint64_t max_pixels,
                            float *out, size_t out_count, kdad_image_info *info);
kdad_status kdad_jpeg_decode(const uint8_t *data, size_t size, uint64_t max_pixels,
                             float *out, size_t out_count, kdad_image_info *info);
/// Reads the first image (directory) of a TIFF: 8 or 16-bit unsigned samples, gray (min-is-black
/// or min-is-white) or RGB, with at most one extra (alpha) sample, stripped or tiled, contiguous
/// or separate planes, any compression this libtiff was built with.
kdad_status kdad_tiff_decode(const uint8_t *data, size_t size, uint64_t max_pixels,
                             float *out, size_t out_count, kdad_image_info *info);

/// A malloc'd byte buffer produced by an encoder. Release with kdad_buffer_free.
typedef struct {
    uint8_t *bytes;
    size_t size;
    size_t capacity;
} kdad_buffer;

void kdad_buffer_free(kdad_buffer *buffer);

/// PNG colour types (the values of the PNG specification).
enum {
    KDAD_PNG_GRAY = 0,
    KDAD_PNG_RGB = 2,
    KDAD_PNG_PALETTE = 3,
    KDAD_PNG_GRAY_ALPHA = 4,
    KDAD_PNG_RGBA = 6,
};

/// Encodes interleaved samples as PNG.
/// `samples`: bit_depth 16 → native-endian uint16_t per sample; bit_depth 8 → one byte per sample;
/// bit_depth 1/2/4 (gray or palette only) → one byte per sample holding the value (this function
/// packs them). Palette images take one index per pixel, `palette_rgb` (3 bytes per entry,
/// `palette_count` entries, 1..256) and optional `trns` alpha per entry. `compression_level` is
/// zlib's 0..9 (-1 for the default).
kdad_status kdad_png_encode(const void *samples, uint32_t width, uint32_t height,
                            int color_type, int bit_depth,
                            const uint8_t *palette_rgb, int palette_count,
                            const uint8_t *trns, int trns_count,
                            int interlaced, int compression_level,
                            kdad_buffer *out, char *message, size_t message_capacity);

/// Encodes interleaved 8-bit samples as JPEG: 1 channel gray, 3 channels RGB (stored YCbCr),
/// 4 channels CMYK (for tests of unsupported variants). `progressive` selects a progressive scan
/// script instead of baseline.
kdad_status kdad_jpeg_encode(const uint8_t *samples, uint32_t width, uint32_t height,
                             int channels, int quality, int progressive,
                             kdad_buffer *out, char *message, size_t message_capacity);

/// TIFF compression choices for kdad_tiff_encode.
enum {
    KDAD_TIFF_COMPRESSION_NONE = 0,
    KDAD_TIFF_COMPRESSION_LZW = 1,
    KDAD_TIFF_COMPRESSION_DEFLATE = 2,
};

/// Encodes interleaved unsigned samples (8-bit bytes or native-endian uint16_t) as a one-image
/// TIFF. channels: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA. tile_width/tile_height 0 → strips of
/// `rows_per_strip` rows (0 → libtiff's default); otherwise tiles (multiples of 16).
/// `separate_planes` stores each channel in its own plane; `predictor` enables horizontal
/// differencing (only with LZW/deflate).
kdad_status kdad_tiff_encode(const void *samples, uint32_t width, uint32_t height,
                             int channels, int bit_depth, int compression,
                             uint32_t rows_per_strip, uint32_t tile_width, uint32_t tile_height,
                             int separate_planes, int predictor,
                             kdad_buffer *out, char *message, size_t message_capacity);

#ifdef __cplusplus
}
#endif

#endif
