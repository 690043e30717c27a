// JPEG decode/encode through libjpeg(-turbo), with a silent, setjmp-based error manager.
#include "codecs_internal.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

// A progressive file can declare an unbounded number of scans, each one a full pass over the
// coefficient buffer; real encoders use about 10. This cap keeps a hostile file from costing minutes.
enum { KDAD_JPEG_MAX_SCANS = 1000 };

typedef struct {
    struct jpeg_error_mgr manager;  // first member: libjpeg hands us this pointer back
    jmp_buf jump;
    char *message;
    size_t message_capacity;
    int hit_end_of_data;
    int too_many_scans;
} jpeg_error_context;

static void jpeg_error_exit_to_caller(j_common_ptr cinfo) {
    jpeg_error_context *context = (jpeg_error_context *)cinfo->err;
    if (context->message[0] == '\0') {
        char text[JMSG_LENGTH_MAX];
        (*cinfo->err->format_message)(cinfo, text);
        kdad_format_message(context->message, context->message_capacity, "%s", text);
    }
    longjmp(context->jump, 1);
}

// Warnings (corrupt-data notes libjpeg recovers from) are neither printed nor fatal; a premature
// end of data never reaches here because our source manager fails first.
static void jpeg_emit_nothing(j_common_ptr cinfo, int level) {
    (void)cinfo;
    (void)level;
}

static void jpeg_output_nothing(j_common_ptr cinfo) { (void)cinfo; }

// Source manager over a memory buffer: everything is handed over at once, so a request for more
// data means the file is truncated. libjpeg's own jpeg_mem_src would insert a fake EOI instead and
// return a grey-padded image.
static void jpeg_source_init(j_decompress_ptr cinfo) { (void)cinfo; }

static boolean jpeg_source_fill(j_decompress_ptr cinfo) {
    jpeg_error_context *context = (jpeg_error_context *)cinfo->err;
    context->hit_end_of_data = 1;
    ERREXIT(cinfo, JERR_INPUT_EOF);
    return FALSE;
}

static void jpeg_source_skip(j_decompress_ptr cinfo, long count) {
    if (count <= 0) return;
    struct jpeg_source_mgr *source = cinfo->src;
    if ((size_t)count > source->bytes_in_buffer) {
        jpeg_error_context *context = (jpeg_error_context *)cinfo->err;
        context->hit_end_of_data = 1;
        ERREXIT(cinfo, JERR_INPUT_EOF);
    }
    source->next_input_byte += count;
    source->bytes_in_buffer -= (size_t)count;
}

static void jpeg_source_term(j_decompress_ptr cinfo) { (void)cinfo; }

static void jpeg_limit_scans(j_common_ptr cinfo) {
    if (!cinfo->is_decompressor) return;
    j_decompress_ptr decompressor = (j_decompress_ptr)cinfo;
    if (decompressor->input_scan_number > KDAD_JPEG_MAX_SCANS) {
        jpeg_error_context *context = (jpeg_error_context *)cinfo->err;
        context->too_many_scans = 1;
        kdad_format_message(context->message, context->message_capacity,
                            "more than %d progressive scans", KDAD_JPEG_MAX_SCANS);
        longjmp(context->jump, 1);
    }
}

static void jpeg_install_error_manager(jpeg_error_context *context, char *message, size_t capacity) {
    jpeg_std_error(&context->manager);
    context->manager.error_exit = jpeg_error_exit_to_caller;
    context->manager.emit_message = jpeg_emit_nothing;
    context->manager.output_message = jpeg_output_nothing;
    context->message = message;
    context->message_capacity = capacity;
}

static kdad_status jpeg_failure_status(const jpeg_error_context *context) {
    if (context->hit_end_of_data) return KDAD_STATUS_TRUNCATED;
    if (context->too_many_scans) return KDAD_STATUS_CORRUPT;
    switch (context->manager.msg_code) {
    case JERR_NO_SOI: return KDAD_STATUS_BAD_MAGIC;
    case JERR_OUT_OF_MEMORY: return KDAD_STATUS_OUT_OF_MEMORY;
    case JERR_BAD_PRECISION:
    case JERR_CONVERSION_NOTIMPL:
    case JERR_NOT_COMPILED:
    case JERR_NOTIMPL:
        return KDAD_STATUS_UNSUPPORTED;
    default: return KDAD_STATUS_CORRUPT;
    }
}

kdad_status kdad_jpeg_decode(const uint8_t *data, size_t size, uint64_t max_pixels,
                             float *out, size_t out_count, kdad_image_info *info) {
    memset(info, 0, sizeof *info);
    static const uint8_t signature[3] = {0xFF, 0xD8, 0xFF};
    if (size < 3) {
        if (size == 0 || memcmp(data, signature, size) == 0) {
            kdad_format_message(info->message, sizeof info->message, "data ends inside the JPEG signature (%zu bytes)", size);
            return KDAD_STATUS_TRUNCATED;
        }
        kdad_format_message(info->message, sizeof info->message, "not a JPEG signature");
        return KDAD_STATUS_BAD_MAGIC;
    }
    if (memcmp(data, signature, 3) != 0) {
        kdad_format_message(info->message, sizeof info->message, "not a JPEG signature");
        return KDAD_STATUS_BAD_MAGIC;
    }

    struct jpeg_decompress_struct cinfo;
    jpeg_error_context errors;
    struct jpeg_source_mgr source;
    struct jpeg_progress_mgr progress;
    memset(&cinfo, 0, sizeof cinfo);
    memset(&errors, 0, sizeof errors);
    memset(&source, 0, sizeof source);
    memset(&progress, 0, sizeof progress);
    jpeg_install_error_manager(&errors, info->message, sizeof info->message);
    cinfo.err = &errors.manager;
    kdad_status status = KDAD_STATUS_OK;

    // All libjpeg allocations belong to cinfo's memory pools; jpeg_destroy_decompress releases them
    // on every path, so the error branch has nothing else to free.
    if (setjmp(errors.jump) != 0) {
        status = jpeg_failure_status(&errors);
        jpeg_destroy_decompress(&cinfo);
        return status;
    }
    jpeg_create_decompress(&cinfo);
    source.next_input_byte = data;
    source.bytes_in_buffer = size;
    source.init_source = jpeg_source_init;
    source.fill_input_buffer = jpeg_source_fill;
    source.skip_input_data = jpeg_source_skip;
    source.resync_to_restart = jpeg_resync_to_restart;
    source.term_source = jpeg_source_term;
    cinfo.src = &source;
    progress.progress_monitor = jpeg_limit_scans;
    cinfo.progress = &progress;

    if (jpeg_read_header(&cinfo, TRUE) != JPEG_HEADER_OK) {
        kdad_format_message(info->message, sizeof info->message, "JPEG holds only tables, no image");
        jpeg_destroy_decompress(&cinfo);
        return KDAD_STATUS_CORRUPT;
    }
    info->width = cinfo.image_width;
    info->height = cinfo.image_height;
    info->bit_depth = cinfo.data_precision;
    if ((uint64_t)cinfo.image_width * (uint64_t)cinfo.image_height > max_pixels) {
        kdad_format_message(info->message, sizeof info->message, "%ux%u exceeds the pixel limit %llu",
                            (unsigned)cinfo.image_width, (unsigned)cinfo.image_height,
                            (unsigned long long)max_pixels);
        jpeg_destroy_decompress(&cinfo);
        return KDAD_STATUS_TOO_LARGE;
    }
    int channels;
    switch (cinfo.jpeg_color_space) {
    case JCS_GRAYSCALE:
        channels = 1;
        cinfo.out_color_space = JCS_GRAYSCALE;
        break;
    case JCS_YCbCr:
    case JCS_RGB:
        channels = 3;
        cinfo.out_color_space = JCS_RGB;
        break;
    case JCS_CMYK:
    case JCS_YCCK:
        kdad_format_message(info->message, sizeof info->message, "CMYK/YCCK JPEG is not supported");
        jpeg_destroy_decompress(&cinfo);
        return KDAD_STATUS_UNSUPPORTED;
    default:
        kdad_format_message(info->message, sizeof info->message, "JPEG colour space %d with %d components is not supported",
                            (int)cinfo.jpeg_color_space, cinfo.num_components);
        jpeg_destroy_decompress(&cinfo);
        return KDAD_STATUS_UNSUPPORTED;
    }
    info->channels = channels;
    if (cinfo.data_precision != 8) {
        kdad_format_message(info->message, sizeof info->message, "%d-bit JPEG is not supported", cinfo.data_precision);
        jpeg_destroy_decompress(&cinfo);
        return KDAD_STATUS_UNSUPPORTED;
    }
    if (out == NULL) {
        jpeg_destroy_decompress(&cinfo);
        return KDAD_STATUS_OK;
    }
    size_t needed = kdad_sample_count(cinfo.image_width, cinfo.image_height, channels);
    if (needed == 0 || needed != out_count) {
        kdad_format_message(info->message, sizeof info->message, "output holds %zu floats, image needs %zu",
                            out_count, needed);
        jpeg_destroy_decompress(&cinfo);
        return KDAD_STATUS_INVALID_ARGUMENT;
    }

    cinfo.dct_method = JDCT_ISLOW;  // the accurate integer IDCT (SIMD in libjpeg-turbo)
    jpeg_start_decompress(&cinfo);
    if (cinfo.output_width != cinfo.image_width || cinfo.output_height != cinfo.image_height ||
        cinfo.output_components != channels) {
        kdad_format_message(info->message, sizeof info->message, "unexpected JPEG output geometry");
        jpeg_destroy_decompress(&cinfo);
        return KDAD_STATUS_CORRUPT;
    }
    JDIMENSION width = cinfo.output_width;
    size_t plane = (size_t)width * cinfo.output_height;
    int batch = cinfo.rec_outbuf_height > 0 ? cinfo.rec_outbuf_height : 1;
    JSAMPARRAY rows = (*cinfo.mem->alloc_sarray)((j_common_ptr)&cinfo, JPOOL_IMAGE,
                                                 width * (JDIMENSION)channels, (JDIMENSION)batch);
    float lut[256];
    kdad_fill_lut8(lut);
    while (cinfo.output_scanline < cinfo.output_height) {
        JDIMENSION first = cinfo.output_scanline;
        JDIMENSION read = jpeg_read_scanlines(&cinfo, rows, (JDIMENSION)batch);
        for (JDIMENSION r = 0; r < read; r++)
            kdad_u8_to_planar(rows[r], width, channels, out, plane, (size_t)(first + r) * width, lut);
        if (read == 0) {
            // Cannot happen with a memory source that errors at the end; guards an endless loop.
            kdad_format_message(info->message, sizeof info->message, "decoder made no progress");
            jpeg_destroy_decompress(&cinfo);
            return KDAD_STATUS_CORRUPT;
        }
    }
    // Reads through EOI so that a file cut anywhere is reported.
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    return status;
}

// ---------------------------------------------------------------------------------------------
// Encoder (used for test fixtures and small outputs). It writes into a kdad_buffer through its own
// destination manager: libjpeg's jpeg_mem_dest keeps its growing buffer private until the end, so
// an error midway would leak it.

typedef struct {
    struct jpeg_destination_mgr manager;  // first member
    kdad_buffer *out;
} jpeg_buffer_destination;

static void jpeg_destination_init(j_compress_ptr cinfo) {
    jpeg_buffer_destination *destination = (jpeg_buffer_destination *)cinfo->dest;
    if (!kdad_buffer_reserve(destination->out, 65536)) ERREXIT1(cinfo, JERR_OUT_OF_MEMORY, 0);
    destination->manager.next_output_byte = destination->out->bytes;
    destination->manager.free_in_buffer = destination->out->capacity;
}

static boolean jpeg_destination_grow(j_compress_ptr cinfo) {
    // libjpeg calls this only when the whole buffer is full.
    jpeg_buffer_destination *destination = (jpeg_buffer_destination *)cinfo->dest;
    destination->out->size = destination->out->capacity;
    if (!kdad_buffer_reserve(destination->out, destination->out->capacity)) ERREXIT1(cinfo, JERR_OUT_OF_MEMORY, 1);
    destination->manager.next_output_byte = destination->out->bytes + destination->out->size;
    destination->manager.free_in_buffer = destination->out->capacity - destination->out->size;
    return TRUE;
}

static void jpeg_destination_term(j_compress_ptr cinfo) {
    jpeg_buffer_destination *destination = (jpeg_buffer_destination *)cinfo->dest;
    destination->out->size = (size_t)(destination->manager.next_output_byte - destination->out->bytes);
}

kdad_status kdad_jpeg_encode(const uint8_t *samples, uint32_t width, uint32_t height,
                             int channels, int quality, int progressive,
                             kdad_buffer *out, char *message, size_t message_capacity) {
    if (message != NULL && message_capacity > 0) message[0] = '\0';
    memset(out, 0, sizeof *out);
    if (samples == NULL || width == 0 || height == 0 || width > 65500 || height > 65500 ||
        (channels != 1 && channels != 3 && channels != 4) || quality < 1 || quality > 100) {
        kdad_format_message(message, message_capacity, "invalid JPEG encode request: %ux%u, %d channels, quality %d",
                            (unsigned)width, (unsigned)height, channels, quality);
        return KDAD_STATUS_INVALID_ARGUMENT;
    }
    struct jpeg_compress_struct cinfo;
    jpeg_error_context errors;
    jpeg_buffer_destination destination;
    memset(&cinfo, 0, sizeof cinfo);
    memset(&errors, 0, sizeof errors);
    memset(&destination, 0, sizeof destination);
    char scratch[KDAD_MESSAGE_CAPACITY] = {0};
    jpeg_install_error_manager(&errors, message != NULL ? message : scratch,
                               message != NULL ? message_capacity : sizeof scratch);
    cinfo.err = &errors.manager;
    destination.out = out;
    destination.manager.init_destination = jpeg_destination_init;
    destination.manager.empty_output_buffer = jpeg_destination_grow;
    destination.manager.term_destination = jpeg_destination_term;

    if (setjmp(errors.jump) != 0) {
        kdad_status status = errors.manager.msg_code == JERR_OUT_OF_MEMORY ? KDAD_STATUS_OUT_OF_MEMORY
                                                                            : KDAD_STATUS_INVALID_ARGUMENT;
        jpeg_destroy_compress(&cinfo);
        kdad_buffer_free(out);
        return status;
    }
    jpeg_create_compress(&cinfo);
    cinfo.dest = &destination.manager;
    cinfo.image_width = width;
    cinfo.image_height = height;
    cinfo.input_components = channels;
    cinfo.in_color_space = channels == 1 ? JCS_GRAYSCALE : channels == 3 ? JCS_RGB : JCS_CMYK;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality, TRUE);
    if (progressive) jpeg_simple_progression(&cinfo);
    jpeg_start_compress(&cinfo, TRUE);
    size_t stride = (size_t)width * (size_t)channels;
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = (JSAMPROW)(samples + (size_t)cinfo.next_scanline * stride);
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    return KDAD_STATUS_OK;
}
