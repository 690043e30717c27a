// TIFF decode/encode through libtiff on memory buffers, with per-handle (libtiff >= 4.5) error
// handlers so libtiff never prints and every failure comes back as a status and message.
#include "codecs_internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tiffio.h>

// One memory "file", read-only (data/size) or growing (out).
typedef struct {
    const uint8_t *data;
    size_t size;
    kdad_buffer *out;
    uint64_t position;
    int hit_end_of_data;
    int failed;
    char *message;
    size_t message_capacity;
} tiff_memory_file;

static int tiff_record_error(TIFF *tif, void *user_data, const char *module, const char *format, va_list args) {
    (void)tif;
    tiff_memory_file *file = user_data;
    if (!file->failed) {
        char text[KDAD_MESSAGE_CAPACITY];
        kdad_format_message_v(text, sizeof text, format, args);
        if (module != NULL && module[0] != '\0')
            kdad_format_message(file->message, file->message_capacity, "%s: %s", module, text);
        else
            kdad_format_message(file->message, file->message_capacity, "%s", text);
    }
    file->failed = 1;
    return 1;  // handled: do not call libtiff's global (stderr) handler
}

static int tiff_ignore_warning(TIFF *tif, void *user_data, const char *module, const char *format, va_list args) {
    (void)tif;
    (void)user_data;
    (void)module;
    (void)format;
    (void)args;
    return 1;
}

// A few libtiff paths still report through the process-wide handlers; silence those once.
static pthread_once_t tiff_global_handlers_once = PTHREAD_ONCE_INIT;
static void tiff_silence_global_handlers(void) {
    TIFFSetErrorHandler(NULL);
    TIFFSetWarningHandler(NULL);
}

static tmsize_t tiff_read(thandle_t handle, void *buffer, tmsize_t length) {
    tiff_memory_file *file = handle;
    if (length <= 0) return 0;
    size_t size = file->out != NULL ? file->out->size : file->size;
    const uint8_t *data = file->out != NULL ? file->out->bytes : file->data;
    size_t available = file->position < size ? size - (size_t)file->position : 0;
    size_t count = (size_t)length < available ? (size_t)length : available;
    if (count < (size_t)length) file->hit_end_of_data = 1;
    if (count > 0) memcpy(buffer, data + file->position, count);
    file->position += count;
    return (tmsize_t)count;
}

static tmsize_t tiff_write(thandle_t handle, void *buffer, tmsize_t length) {
    tiff_memory_file *file = handle;
    if (file->out == NULL || length < 0) return -1;
    kdad_buffer *out = file->out;
    uint64_t end = file->position + (uint64_t)length;
    if (end > SIZE_MAX) return -1;
    if (end > out->size) {
        if (!kdad_buffer_reserve(out, (size_t)end - out->size)) return -1;
        // A seek past the end leaves a gap: files have zeros there.
        if (file->position > out->size) memset(out->bytes + out->size, 0, (size_t)file->position - out->size);
        out->size = (size_t)end;
    }
    memcpy(out->bytes + file->position, buffer, (size_t)length);
    file->position = end;
    return length;
}

static toff_t tiff_size(thandle_t handle) {
    tiff_memory_file *file = handle;
    return file->out != NULL ? file->out->size : file->size;
}

static toff_t tiff_seek(thandle_t handle, toff_t offset, int whence) {
    tiff_memory_file *file = handle;
    uint64_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? file->position : tiff_size(handle);
    if (offset > UINT64_MAX - base) return (toff_t)-1;
    file->position = base + offset;
    return file->position;
}

static int tiff_close(thandle_t handle) {
    (void)handle;
    return 0;
}

static int tiff_map(thandle_t handle, void **base, toff_t *size) {
    // No mapping: every byte goes through tiff_read, which notices reads past the end.
    (void)handle;
    (void)base;
    (void)size;
    return 0;
}

static void tiff_unmap(thandle_t handle, void *base, toff_t size) {
    (void)handle;
    (void)base;
    (void)size;
}

static TIFF *tiff_open(tiff_memory_file *file, const char *mode, tmsize_t max_allocation) {
    pthread_once(&tiff_global_handlers_once, tiff_silence_global_handlers);
    TIFFOpenOptions *options = TIFFOpenOptionsAlloc();
    if (options == NULL) {
        kdad_format_message(file->message, file->message_capacity, "out of memory (TIFF options)");
        file->failed = 1;
        return NULL;
    }
    TIFFOpenOptionsSetErrorHandlerExtR(options, tiff_record_error, file);
    TIFFOpenOptionsSetWarningHandlerExtR(options, tiff_ignore_warning, file);
    if (max_allocation > 0) TIFFOpenOptionsSetMaxSingleMemAlloc(options, max_allocation);
    TIFF *tif = TIFFClientOpenExt("memory", mode, (thandle_t)file, tiff_read, tiff_write, tiff_seek, tiff_close,
                                  tiff_size, tiff_map, tiff_unmap, options);
    TIFFOpenOptionsFree(options);  // the handle keeps its own copy
    return tif;
}

static int tiff_is_signature_prefix(const uint8_t *data, size_t size) {
    static const uint8_t signatures[4][4] = {
        {'I', 'I', 42, 0}, {'M', 'M', 0, 42}, {'I', 'I', 43, 0}, {'M', 'M', 0, 43}};
    for (int i = 0; i < 4; i++) {
        size_t n = size < 4 ? size : 4;
        if (memcmp(data, signatures[i], n) == 0) return 1;
    }
    return 0;
}

// Flips min-is-white gray samples to min-is-black, in place, on `count` samples spaced `stride`.
static void tiff_invert(uint8_t *samples, size_t count, size_t stride, int bytes_per_sample) {
    if (bytes_per_sample == 1) {
        for (size_t i = 0; i < count; i++) samples[i * stride] = (uint8_t)(255u - samples[i * stride]);
    } else {
        uint16_t *wide = (uint16_t *)samples;
        for (size_t i = 0; i < count; i++) wide[i * stride] = (uint16_t)(65535u - wide[i * stride]);
    }
}

static void tiff_convert(const uint8_t *source, size_t count, int interleaved_channels, int bytes_per_sample,
                         float *out, size_t plane, size_t offset, const float lut[256]) {
    if (bytes_per_sample == 1)
        kdad_u8_to_planar(source, count, interleaved_channels, out, plane, offset, lut);
    else
        kdad_u16_to_planar((const uint16_t *)source, count, interleaved_channels, out, plane, offset);
}

kdad_status kdad_tiff_decode(const uint8_t *data, size_t size, uint64_t max_pixels,
                             float *out, size_t out_count, kdad_image_info *info) {
    memset(info, 0, sizeof *info);
    if (size < 8) {
        if (size == 0 || tiff_is_signature_prefix(data, size)) {
            kdad_format_message(info->message, sizeof info->message, "data ends inside the TIFF header (%zu bytes)", size);
            return KDAD_STATUS_TRUNCATED;
        }
    }
    if (size < 4 || !tiff_is_signature_prefix(data, 4)) {
        kdad_format_message(info->message, sizeof info->message, "not a TIFF signature");
        return KDAD_STATUS_BAD_MAGIC;
    }

    tiff_memory_file file;
    memset(&file, 0, sizeof file);
    file.data = data;
    file.size = size;
    file.message = info->message;
    file.message_capacity = sizeof info->message;
    // libtiff's own allocations (strip tables, decoder state) are capped in line with our pixel
    // limit: 16 bytes per allowed pixel plus slack, so a hostile tag cannot ask for gigabytes.
    uint64_t cap = max_pixels > (UINT64_MAX - (64u << 20)) / 16 ? UINT64_MAX : max_pixels * 16 + (64u << 20);
    tmsize_t max_allocation = cap > (uint64_t)INT64_MAX ? (tmsize_t)INT64_MAX : (tmsize_t)cap;
    TIFF *tif = tiff_open(&file, "rm", max_allocation);
    if (tif == NULL) {
        if (file.message[0] == '\0') kdad_format_message(info->message, sizeof info->message, "libtiff could not open the data");
        return file.hit_end_of_data ? KDAD_STATUS_TRUNCATED : KDAD_STATUS_CORRUPT;
    }

    kdad_status status = KDAD_STATUS_OK;
    uint8_t *chunk = NULL;
    uint32_t width = 0, height = 0;
    uint16_t bits = 1, samples_per_pixel = 1, sample_format = SAMPLEFORMAT_UINT, planar = PLANARCONFIG_CONTIG;
    uint16_t photometric = 0, compression = COMPRESSION_NONE;
    if (!TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &width) || !TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &height)) {
        kdad_format_message(info->message, sizeof info->message, "TIFF has no image width/length");
        status = file.hit_end_of_data ? KDAD_STATUS_TRUNCATED : KDAD_STATUS_CORRUPT;
        goto cleanup;
    }
    info->width = width;
    info->height = height;
    if ((uint64_t)width * (uint64_t)height > max_pixels) {
        kdad_format_message(info->message, sizeof info->message, "%ux%u exceeds the pixel limit %llu",
                            (unsigned)width, (unsigned)height, (unsigned long long)max_pixels);
        status = KDAD_STATUS_TOO_LARGE;
        goto cleanup;
    }
    TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &bits);
    TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &samples_per_pixel);
    TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLEFORMAT, &sample_format);
    TIFFGetFieldDefaulted(tif, TIFFTAG_PLANARCONFIG, &planar);
    TIFFGetFieldDefaulted(tif, TIFFTAG_COMPRESSION, &compression);
    if (!TIFFGetField(tif, TIFFTAG_PHOTOMETRIC, &photometric))
        photometric = samples_per_pixel >= 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK;
    info->bit_depth = bits;

    int color_channels;
    if (photometric == PHOTOMETRIC_MINISBLACK || photometric == PHOTOMETRIC_MINISWHITE) color_channels = 1;
    else if (photometric == PHOTOMETRIC_RGB) color_channels = 3;
    else {
        kdad_format_message(info->message, sizeof info->message,
                            "TIFF photometric interpretation %u is not supported (gray or RGB only)", (unsigned)photometric);
        status = KDAD_STATUS_UNSUPPORTED;
        goto cleanup;
    }
    if (samples_per_pixel != color_channels && samples_per_pixel != color_channels + 1) {
        kdad_format_message(info->message, sizeof info->message, "TIFF with %u samples per pixel for %s is not supported",
                            (unsigned)samples_per_pixel, color_channels == 1 ? "gray" : "RGB");
        status = KDAD_STATUS_UNSUPPORTED;
        goto cleanup;
    }
    if (bits != 8 && bits != 16) {
        kdad_format_message(info->message, sizeof info->message, "%u-bit TIFF is not supported (8 or 16 only)", (unsigned)bits);
        status = KDAD_STATUS_UNSUPPORTED;
        goto cleanup;
    }
    if (sample_format != SAMPLEFORMAT_UINT && sample_format != SAMPLEFORMAT_VOID) {
        kdad_format_message(info->message, sizeof info->message, "TIFF sample format %u is not supported (unsigned integers only)",
                            (unsigned)sample_format);
        status = KDAD_STATUS_UNSUPPORTED;
        goto cleanup;
    }
    if (!TIFFIsCODECConfigured(compression)) {
        kdad_format_message(info->message, sizeof info->message, "TIFF compression %u is not available", (unsigned)compression);
        status = KDAD_STATUS_UNSUPPORTED;
        goto cleanup;
    }
    int channels = samples_per_pixel;
    info->channels = channels;
    if (out == NULL) goto cleanup;

    size_t needed = kdad_sample_count(width, height, channels);
    if (needed == 0 || needed != out_count) {
        kdad_format_message(info->message, sizeof info->message, "output holds %zu floats, image needs %zu", out_count, needed);
        status = KDAD_STATUS_INVALID_ARGUMENT;
        goto cleanup;
    }

    int separate = planar == PLANARCONFIG_SEPARATE && channels > 1;
    int planes = separate ? channels : 1;
    int chunk_channels = separate ? 1 : channels;
    int bytes_per_sample = bits / 8;
    size_t plane = (size_t)width * height;
    float lut[256];
    kdad_fill_lut8(lut);
    int invert = photometric == PHOTOMETRIC_MINISWHITE;

    if (TIFFIsTiled(tif)) {
        uint32_t tile_width = 0, tile_height = 0;
        if (!TIFFGetField(tif, TIFFTAG_TILEWIDTH, &tile_width) || !TIFFGetField(tif, TIFFTAG_TILELENGTH, &tile_height) ||
            tile_width == 0 || tile_height == 0) {
            kdad_format_message(info->message, sizeof info->message, "tiled TIFF without valid tile size");
            status = KDAD_STATUS_CORRUPT;
            goto cleanup;
        }
        uint64_t tile_pixels = (uint64_t)tile_width * tile_height;
        uint64_t tile_limit = max_pixels > (1u << 24) ? max_pixels : (1u << 24);
        if (tile_pixels > tile_limit) {
            kdad_format_message(info->message, sizeof info->message, "tile %ux%u exceeds the pixel limit",
                                (unsigned)tile_width, (unsigned)tile_height);
            status = KDAD_STATUS_TOO_LARGE;
            goto cleanup;
        }
        size_t tile_row_bytes = (size_t)tile_width * chunk_channels * bytes_per_sample;
        size_t tile_bytes = tile_row_bytes * tile_height;
        chunk = malloc(tile_bytes);
        if (chunk == NULL) {
            kdad_format_message(info->message, sizeof info->message, "out of memory (tile buffer)");
            status = KDAD_STATUS_OUT_OF_MEMORY;
            goto cleanup;
        }
        for (int p = 0; p < planes; p++) {
            for (uint32_t y0 = 0; y0 < height; y0 += tile_height) {
                for (uint32_t x0 = 0; x0 < width; x0 += tile_width) {
                    uint32_t tile = TIFFComputeTile(tif, x0, y0, 0, (uint16_t)p);
                    tmsize_t read = TIFFReadEncodedTile(tif, tile, chunk, (tmsize_t)tile_bytes);
                    if (read < 0 || (size_t)read < tile_bytes) {
                        if (file.message[0] == '\0')
                            kdad_format_message(info->message, sizeof info->message, "tile %u is short or unreadable", (unsigned)tile);
                        status = file.hit_end_of_data ? KDAD_STATUS_TRUNCATED : KDAD_STATUS_CORRUPT;
                        goto cleanup;
                    }
                    uint32_t columns = width - x0 < tile_width ? width - x0 : tile_width;
                    uint32_t rows = height - y0 < tile_height ? height - y0 : tile_height;
                    for (uint32_t r = 0; r < rows; r++) {
                        uint8_t *source = chunk + (size_t)r * tile_row_bytes;
                        if (invert && p == 0) tiff_invert(source, columns, (size_t)chunk_channels, bytes_per_sample);
                        tiff_convert(source, columns, chunk_channels, bytes_per_sample, out + (size_t)p * plane, plane,
                                     (size_t)(y0 + r) * width + x0, lut);
                    }
                }
            }
        }
    } else {
        uint32_t rows_per_strip = height;
        TIFFGetFieldDefaulted(tif, TIFFTAG_ROWSPERSTRIP, &rows_per_strip);
        if (rows_per_strip == 0 || rows_per_strip > height) rows_per_strip = height;
        size_t row_bytes = (size_t)width * chunk_channels * bytes_per_sample;
        size_t strip_bytes = row_bytes * rows_per_strip;
        chunk = malloc(strip_bytes);
        if (chunk == NULL) {
            kdad_format_message(info->message, sizeof info->message, "out of memory (strip buffer)");
            status = KDAD_STATUS_OUT_OF_MEMORY;
            goto cleanup;
        }
        for (int p = 0; p < planes; p++) {
            for (uint32_t y0 = 0; y0 < height; y0 += rows_per_strip) {
                uint32_t rows = height - y0 < rows_per_strip ? height - y0 : rows_per_strip;
                uint32_t strip = TIFFComputeStrip(tif, y0, (uint16_t)p);
                tmsize_t read = TIFFReadEncodedStrip(tif, strip, chunk, (tmsize_t)(row_bytes * rows));
                if (read < 0 || (size_t)read < row_bytes * rows) {
                    if (file.message[0] == '\0')
                        kdad_format_message(info->message, sizeof info->message, "strip %u is short or unreadable", (unsigned)strip);
                    status = file.hit_end_of_data ? KDAD_STATUS_TRUNCATED : KDAD_STATUS_CORRUPT;
                    goto cleanup;
                }
                for (uint32_t r = 0; r < rows; r++) {
                    uint8_t *source = chunk + (size_t)r * row_bytes;
                    if (invert && p == 0) tiff_invert(source, width, (size_t)chunk_channels, bytes_per_sample);
                    tiff_convert(source, width, chunk_channels, bytes_per_sample, out + (size_t)p * plane, plane,
                                 (size_t)(y0 + r) * width, lut);
                }
            }
        }
    }
    // libtiff tolerates some reads past the end (a directory's next-IFD pointer, for one); a file
    // that is shorter than its own structure says is truncated all the same.
    if (file.hit_end_of_data) {
        if (info->message[0] == '\0')
            kdad_format_message(info->message, sizeof info->message, "TIFF structure points past the end of the data");
        status = KDAD_STATUS_TRUNCATED;
    }

cleanup:
    TIFFClose(tif);
    free(chunk);
    if (status == KDAD_STATUS_OK) info->message[0] = '\0';
    return status;
}

// ---------------------------------------------------------------------------------------------
// Encoder

kdad_status kdad_tiff_encode(const void *samples, uint32_t width, uint32_t height,
                             int channels, int bit_depth, int compression,
                             uint32_t rows_per_strip, uint32_t tile_width, uint32_t tile_height,
                             int separate_planes, int predictor,
                             kdad_buffer *out, char *message, size_t message_capacity) {
    char scratch[KDAD_MESSAGE_CAPACITY] = {0};
    if (message == NULL || message_capacity == 0) {
        message = scratch;
        message_capacity = sizeof scratch;
    }
    message[0] = '\0';
    memset(out, 0, sizeof *out);
    int tiled = tile_width != 0 || tile_height != 0;
    if (samples == NULL || width == 0 || height == 0 || channels < 1 || channels > 4 ||
        (bit_depth != 8 && bit_depth != 16) || compression < KDAD_TIFF_COMPRESSION_NONE ||
        compression > KDAD_TIFF_COMPRESSION_DEFLATE ||
        (tiled && (tile_width == 0 || tile_height == 0 || tile_width % 16 != 0 || tile_height % 16 != 0))) {
        kdad_format_message(message, message_capacity,
                            "invalid TIFF encode request: %ux%u, %d channels, %d bits, compression %d, tile %ux%u",
                            (unsigned)width, (unsigned)height, channels, bit_depth, compression,
                            (unsigned)tile_width, (unsigned)tile_height);
        return KDAD_STATUS_INVALID_ARGUMENT;
    }

    tiff_memory_file file;
    memset(&file, 0, sizeof file);
    file.out = out;
    file.message = message;
    file.message_capacity = message_capacity;
    TIFF *tif = tiff_open(&file, "w", 0);
    if (tif == NULL) {
        kdad_buffer_free(out);
        if (message[0] == '\0') kdad_format_message(message, message_capacity, "libtiff could not create a file");
        return KDAD_STATUS_OUT_OF_MEMORY;
    }

    uint8_t *chunk = NULL;
    int separate = separate_planes && channels > 1;
    uint16_t codec = compression == KDAD_TIFF_COMPRESSION_LZW       ? COMPRESSION_LZW
                     : compression == KDAD_TIFF_COMPRESSION_DEFLATE ? COMPRESSION_ADOBE_DEFLATE
                                                                    : COMPRESSION_NONE;
    TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, width);
    TIFFSetField(tif, TIFFTAG_IMAGELENGTH, height);
    TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, (uint16_t)bit_depth);
    TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, (uint16_t)channels);
    TIFFSetField(tif, TIFFTAG_SAMPLEFORMAT, (uint16_t)SAMPLEFORMAT_UINT);
    TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, (uint16_t)(channels >= 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK));
    TIFFSetField(tif, TIFFTAG_PLANARCONFIG, (uint16_t)(separate ? PLANARCONFIG_SEPARATE : PLANARCONFIG_CONTIG));
    TIFFSetField(tif, TIFFTAG_COMPRESSION, codec);
    if (predictor && codec != COMPRESSION_NONE) TIFFSetField(tif, TIFFTAG_PREDICTOR, (uint16_t)PREDICTOR_HORIZONTAL);
    if (channels == 2 || channels == 4) {
        uint16_t extra = EXTRASAMPLE_UNASSALPHA;
        TIFFSetField(tif, TIFFTAG_EXTRASAMPLES, (uint16_t)1, &extra);
    }
    if (tiled) {
        TIFFSetField(tif, TIFFTAG_TILEWIDTH, tile_width);
        TIFFSetField(tif, TIFFTAG_TILELENGTH, tile_height);
    } else {
        uint32_t rows = rows_per_strip != 0 ? rows_per_strip : TIFFDefaultStripSize(tif, 0);
        if (rows == 0 || rows > height) rows = height;
        rows_per_strip = rows;
        TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, rows);
    }
    if (file.failed) goto failure;

    int planes = separate ? channels : 1;
    int chunk_channels = separate ? 1 : channels;
    size_t bytes_per_sample = (size_t)bit_depth / 8;
    size_t pixel_bytes = (size_t)channels * bytes_per_sample;
    size_t chunk_pixel_bytes = (size_t)chunk_channels * bytes_per_sample;
    uint32_t chunk_width = tiled ? tile_width : width;
    uint32_t chunk_height = tiled ? tile_height : rows_per_strip;
    size_t chunk_bytes = (size_t)chunk_width * chunk_height * chunk_pixel_bytes;
    chunk = malloc(chunk_bytes);
    if (chunk == NULL) {
        kdad_format_message(message, message_capacity, "out of memory (TIFF chunk)");
        goto failure;
    }
    const uint8_t *source = samples;
    for (int p = 0; p < planes; p++) {
        for (uint32_t y0 = 0; y0 < height; y0 += chunk_height) {
            for (uint32_t x0 = 0; x0 < width; x0 += chunk_width) {
                uint32_t columns = width - x0 < chunk_width ? width - x0 : chunk_width;
                uint32_t rows = height - y0 < chunk_height ? height - y0 : chunk_height;
                memset(chunk, 0, chunk_bytes);  // tiles past the image edge are padded with zeros
                for (uint32_t r = 0; r < rows; r++) {
                    uint8_t *destination = chunk + (size_t)r * chunk_width * chunk_pixel_bytes;
                    const uint8_t *row = source + ((size_t)(y0 + r) * width + x0) * pixel_bytes;
                    if (!separate) {
                        memcpy(destination, row, (size_t)columns * pixel_bytes);
                    } else {
                        for (uint32_t x = 0; x < columns; x++)
                            memcpy(destination + x * bytes_per_sample, row + x * pixel_bytes + (size_t)p * bytes_per_sample,
                                   bytes_per_sample);
                    }
                }
                tmsize_t written;
                if (tiled) {
                    written = TIFFWriteEncodedTile(tif, TIFFComputeTile(tif, x0, y0, 0, (uint16_t)p), chunk,
                                                   (tmsize_t)chunk_bytes);
                } else {
                    written = TIFFWriteEncodedStrip(tif, TIFFComputeStrip(tif, y0, (uint16_t)p), chunk,
                                                    (tmsize_t)((size_t)rows * chunk_width * chunk_pixel_bytes));
                }
                if (written < 0 || file.failed) goto failure;
            }
        }
    }
    if (!TIFFWriteDirectory(tif) || file.failed) goto failure;
    TIFFClose(tif);
    free(chunk);
    return KDAD_STATUS_OK;

failure:
    TIFFClose(tif);
    free(chunk);
    kdad_buffer_free(out);
    if (message[0] == '\0') kdad_format_message(message, message_capacity, "libtiff failed to write the image");
    return KDAD_STATUS_INVALID_ARGUMENT;
}
