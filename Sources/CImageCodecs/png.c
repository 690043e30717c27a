// PNG decode/encode through libpng, with setjmp-guarded error handling.
#include "codecs_internal.h"

#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

// Everything a decode owns lives in this struct (not in locals), so the longjmp back into
// kdad_png_decode cannot leave a stale register copy of a pointer that must be freed.
typedef struct {
    jmp_buf jump;
    const uint8_t *data;
    size_t size;
    size_t position;
    int hit_end_of_data;
    char *message;
    png_structp png;
    png_infop info;
    uint8_t *row;
    uint8_t *image;
    png_bytep *row_pointers;
} png_decode_context;

static void png_decode_error(png_structp png, png_const_charp text) {
    png_decode_context *context = png_get_error_ptr(png);
    // The first message wins: libpng may report again while unwinding.
    if (context->message[0] == '\0') kdad_format_message(context->message, KDAD_MESSAGE_CAPACITY, "%s", text);
    longjmp(context->jump, 1);
}

static void png_ignore_warning(png_structp png, png_const_charp text) {
    (void)png;
    (void)text;
}

static void png_read_from_memory(png_structp png, png_bytep destination, size_t length) {
    png_decode_context *context = png_get_io_ptr(png);
    if (length > context->size - context->position) {
        context->hit_end_of_data = 1;
        png_error(png, "unexpected end of data");
    }
    memcpy(destination, context->data + context->position, length);
    context->position += length;
}

static kdad_status png_failure_status(const png_decode_context *context) {
    if (context->hit_end_of_data) return KDAD_STATUS_TRUNCATED;
    if (strstr(context->message, "out of memory") != NULL || strstr(context->message, "Out of Memory") != NULL)
        return KDAD_STATUS_OUT_OF_MEMORY;
    return KDAD_STATUS_CORRUPT;
}

kdad_status kdad_png_decode(const uint8_t *data, size_t size, uint64_t max_pixels,
                            float *out, size_t out_count, kdad_image_info *info) {
    memset(info, 0, sizeof *info);
    if (size < 8) {
        if (size == 0 || memcmp(data, "\x89PNG\r\n\x1a\n", size) == 0) {
            kdad_format_message(info->message, sizeof info->message, "data ends inside the PNG signature (%zu bytes)", size);
            return KDAD_STATUS_TRUNCATED;
        }
        kdad_format_message(info->message, sizeof info->message, "not a PNG signature");
        return KDAD_STATUS_BAD_MAGIC;
    }
    if (png_sig_cmp(data, 0, 8) != 0) {
        kdad_format_message(info->message, sizeof info->message, "not a PNG signature");
        return KDAD_STATUS_BAD_MAGIC;
    }

    png_decode_context context;
    memset(&context, 0, sizeof context);
    context.data = data;
    context.size = size;
    context.message = info->message;
    kdad_status status = KDAD_STATUS_OK;

    context.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &context, png_decode_error, png_ignore_warning);
    if (context.png == NULL) {
        kdad_format_message(info->message, sizeof info->message, "libpng could not allocate a decoder");
        return KDAD_STATUS_OUT_OF_MEMORY;
    }
    if (setjmp(context.jump) != 0) {
        status = png_failure_status(&context);
        goto cleanup;
    }
    context.info = png_create_info_struct(context.png);
    if (context.info == NULL) png_error(context.png, "out of memory (info struct)");

    // Our own pixel limit (below) is the authority; libpng's default 1,000,000 px per side would
    // otherwise turn a merely large header into an unhelpful generic error.
    png_set_user_limits(context.png, 0x7fffffff, 0x7fffffff);
    png_set_read_fn(context.png, &context, png_read_from_memory);
    png_read_info(context.png, context.info);

    png_uint_32 width = 0, height = 0;
    int file_depth = 0, color_type = 0, interlace = 0;
    png_get_IHDR(context.png, context.info, &width, &height, &file_depth, &color_type, &interlace, NULL, NULL);
    info->width = width;
    info->height = height;
    if ((uint64_t)width * (uint64_t)height > max_pixels) {
        kdad_format_message(info->message, sizeof info->message, "%ux%u exceeds the pixel limit %llu",
                            (unsigned)width, (unsigned)height, (unsigned long long)max_pixels);
        status = KDAD_STATUS_TOO_LARGE;
        goto cleanup;
    }

    int has_trns = png_get_valid(context.png, context.info, PNG_INFO_tRNS) != 0;
    if (color_type == PNG_COLOR_TYPE_PALETTE) {
        png_set_palette_to_rgb(context.png);
        info->bit_depth = 8;
    } else {
        info->bit_depth = file_depth;
        if (file_depth < 8) png_set_expand_gray_1_2_4_to_8(context.png);
    }
    if (has_trns) png_set_tRNS_to_alpha(context.png);
    if (file_depth == 16) png_set_swap(context.png);  // big-endian in the file, native for us
    int passes = png_set_interlace_handling(context.png);
    png_read_update_info(context.png, context.info);

    int channels = png_get_channels(context.png, context.info);
    int output_depth = png_get_bit_depth(context.png, context.info);
    info->channels = channels;
    if (channels < 1 || channels > 4 || (output_depth != 8 && output_depth != 16)) {
        kdad_format_message(info->message, sizeof info->message, "unexpected PNG layout: %d channels at %d bits",
                            channels, output_depth);
        status = KDAD_STATUS_UNSUPPORTED;
        goto cleanup;
    }
    if (out == NULL) goto cleanup;  // header only

    size_t needed = kdad_sample_count(width, height, channels);
    if (needed == 0 || needed != out_count) {
        kdad_format_message(info->message, sizeof info->message, "output holds %zu floats, image needs %zu",
                            out_count, needed);
        status = KDAD_STATUS_INVALID_ARGUMENT;
        goto cleanup;
    }
    size_t row_bytes = png_get_rowbytes(context.png, context.info);
    size_t plane = (size_t)width * height;
    float lut[256];
    kdad_fill_lut8(lut);

    if (passes == 1) {
        context.row = malloc(row_bytes);
        if (context.row == NULL) png_error(context.png, "out of memory (row buffer)");
        for (png_uint_32 y = 0; y < height; y++) {
            png_read_row(context.png, context.row, NULL);
            if (output_depth == 8)
                kdad_u8_to_planar(context.row, width, channels, out, plane, (size_t)y * width, lut);
            else
                kdad_u16_to_planar((const uint16_t *)context.row, width, channels, out, plane, (size_t)y * width);
        }
    } else {
        // Interlaced: libpng needs the whole image to combine the seven passes.
        if (row_bytes != 0 && height > SIZE_MAX / row_bytes) png_error(context.png, "out of memory (image size)");
        context.image = malloc(row_bytes * height);
        context.row_pointers = malloc(sizeof(png_bytep) * height);
        if (context.image == NULL || context.row_pointers == NULL) png_error(context.png, "out of memory (image buffer)");
        for (png_uint_32 y = 0; y < height; y++) context.row_pointers[y] = context.image + (size_t)y * row_bytes;
        png_read_image(context.png, context.row_pointers);
        for (png_uint_32 y = 0; y < height; y++) {
            if (output_depth == 8)
                kdad_u8_to_planar(context.row_pointers[y], width, channels, out, plane, (size_t)y * width, lut);
            else
                kdad_u16_to_planar((const uint16_t *)context.row_pointers[y], width, channels, out, plane,
                                   (size_t)y * width);
        }
    }
    // Reads through IEND so that a file cut anywhere (even in the last CRC) is reported.
    png_read_end(context.png, NULL);

cleanup:
    png_destroy_read_struct(&context.png, context.info != NULL ? &context.info : NULL, NULL);
    free(context.row);
    free(context.image);
    free(context.row_pointers);
    if (status == KDAD_STATUS_OK) info->message[0] = '\0';
    return status;
}

// ---------------------------------------------------------------------------------------------
// Encoder

typedef struct {
    jmp_buf jump;
    kdad_buffer *out;
    char *message;
    size_t message_capacity;
    png_structp png;
    png_infop info;
    uint8_t *packed_row;
} png_encode_context;

static void png_encode_error(png_structp png, png_const_charp text) {
    png_encode_context *context = png_get_error_ptr(png);
    kdad_format_message(context->message, context->message_capacity, "%s", text);
    longjmp(context->jump, 1);
}

static void png_write_to_buffer(png_structp png, png_bytep bytes, size_t length) {
    png_encode_context *context = png_get_io_ptr(png);
    if (!kdad_buffer_reserve(context->out, length)) png_error(png, "out of memory (output buffer)");
    memcpy(context->out->bytes + context->out->size, bytes, length);
    context->out->size += length;
}

static void png_flush_nothing(png_structp png) { (void)png; }

static int png_channels_of(int color_type) {
    switch (color_type) {
    case KDAD_PNG_GRAY: return 1;
    case KDAD_PNG_GRAY_ALPHA: return 2;
    case KDAD_PNG_RGB: return 3;
    case KDAD_PNG_RGBA: return 4;
    case KDAD_PNG_PALETTE: return 1;
    default: return 0;
    }
}

kdad_status kdad_png_encode(const void *samples, uint32_t width, uint32_t height,
                            int color_type, int bit_depth,
                            const uint8_t *palette_rgb, int palette_count,
                            const uint8_t *trns, int trns_count,
                            int interlaced, int compression_level,
                            kdad_buffer *out, char *message, size_t message_capacity) {
    if (message != NULL && message_capacity > 0) message[0] = '\0';
    memset(out, 0, sizeof *out);
    int channels = png_channels_of(color_type);
    int low_depth = bit_depth == 1 || bit_depth == 2 || bit_depth == 4;
    int valid = channels != 0 && width > 0 && height > 0 && width <= 0x7fffffff && height <= 0x7fffffff;
    if (color_type == KDAD_PNG_PALETTE)
        valid = valid && (low_depth || bit_depth == 8) && palette_rgb != NULL && palette_count >= 1 &&
                palette_count <= 256 && palette_count <= (1 << bit_depth) && trns_count >= 0 &&
                trns_count <= palette_count;
    else if (color_type == KDAD_PNG_GRAY)
        valid = valid && (low_depth || bit_depth == 8 || bit_depth == 16);
    else
        valid = valid && (bit_depth == 8 || bit_depth == 16);
    if (!valid || samples == NULL) {
        kdad_format_message(message, message_capacity, "invalid PNG encode request: %ux%u colour type %d depth %d",
                            (unsigned)width, (unsigned)height, color_type, bit_depth);
        return KDAD_STATUS_INVALID_ARGUMENT;
    }

    png_encode_context context;
    memset(&context, 0, sizeof context);
    context.out = out;
    context.message = message;
    context.message_capacity = message_capacity;
    kdad_status status = KDAD_STATUS_OK;

    context.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &context, png_encode_error, png_ignore_warning);
    if (context.png == NULL) {
        kdad_format_message(message, message_capacity, "libpng could not allocate an encoder");
        return KDAD_STATUS_OUT_OF_MEMORY;
    }
    if (setjmp(context.jump) != 0) {
        status = strstr(message, "out of memory") != NULL ? KDAD_STATUS_OUT_OF_MEMORY : KDAD_STATUS_INVALID_ARGUMENT;
        goto cleanup;
    }
    context.info = png_create_info_struct(context.png);
    if (context.info == NULL) png_error(context.png, "out of memory (info struct)");
    png_set_write_fn(context.png, &context, png_write_to_buffer, png_flush_nothing);
    if (compression_level >= 0 && compression_level <= 9) png_set_compression_level(context.png, compression_level);
    png_set_IHDR(context.png, context.info, width, height, bit_depth, color_type,
                 interlaced ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (color_type == KDAD_PNG_PALETTE) {
        png_color palette[256];
        for (int i = 0; i < palette_count; i++) {
            palette[i].red = palette_rgb[3 * i];
            palette[i].green = palette_rgb[3 * i + 1];
            palette[i].blue = palette_rgb[3 * i + 2];
        }
        png_set_PLTE(context.png, context.info, palette, palette_count);
        if (trns != NULL && trns_count > 0) png_set_tRNS(context.png, context.info, trns, trns_count, NULL);
    }
    png_write_info(context.png, context.info);
    if (bit_depth == 16) png_set_swap(context.png);  // our samples are native-endian

    size_t samples_per_row = (size_t)width * (size_t)channels;
    size_t packed_bytes = low_depth ? ((size_t)width * (size_t)bit_depth + 7) / 8 : 0;
    if (low_depth) {
        context.packed_row = malloc(packed_bytes);
        if (context.packed_row == NULL) png_error(context.png, "out of memory (row buffer)");
    }
    int passes = png_set_interlace_handling(context.png);
    for (int pass = 0; pass < passes; pass++) {
        for (uint32_t y = 0; y < height; y++) {
            if (bit_depth == 16) {
                png_write_row(context.png, (png_const_bytep)((const uint16_t *)samples + (size_t)y * samples_per_row));
            } else if (bit_depth == 8) {
                png_write_row(context.png, (const uint8_t *)samples + (size_t)y * samples_per_row);
            } else {
                // Pack one-value-per-byte input into the file's MSB-first sub-byte layout.
                const uint8_t *row = (const uint8_t *)samples + (size_t)y * samples_per_row;
                memset(context.packed_row, 0, packed_bytes);
                unsigned mask = (1u << bit_depth) - 1u;
                for (uint32_t x = 0; x < width; x++) {
                    size_t bit = (size_t)x * (size_t)bit_depth;
                    unsigned shift = 8u - (unsigned)bit_depth - (unsigned)(bit % 8);
                    context.packed_row[bit / 8] |= (uint8_t)((row[x] & mask) << shift);
                }
                png_write_row(context.png, context.packed_row);
            }
        }
    }
    png_write_end(context.png, NULL);

cleanup:
    png_destroy_write_struct(&context.png, context.info != NULL ? &context.info : NULL);
    free(context.packed_row);
    if (status != KDAD_STATUS_OK) kdad_buffer_free(out);
    return status;
}
