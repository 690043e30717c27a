// Helpers shared by the codec files of CImageCodecs (not part of the public header).
#ifndef KDAD_CODECS_INTERNAL_H
#define KDAD_CODECS_INTERNAL_H

#include "kdad_codecs.h"
#include <stdarg.h>

/// printf into a fixed message buffer, always NUL-terminated, never overflowing.
void kdad_format_message(char *message, size_t capacity, const char *format, ...)
    __attribute__((format(printf, 3, 4)));
void kdad_format_message_v(char *message, size_t capacity, const char *format, va_list args);

/// Grows `buffer` so that `extra` more bytes fit. Returns 0 when memory is exhausted.
int kdad_buffer_reserve(kdad_buffer *buffer, size_t extra);

/// Fills lut[v] = v / 255 for the 8-bit conversion (a table is faster than a divide per sample).
void kdad_fill_lut8(float lut[256]);

/// Converts `count` pixels of `channels` interleaved samples into planar floats: sample c of pixel
/// i goes to out[c * plane + offset + i].
void kdad_u8_to_planar(const uint8_t *src, size_t count, int channels, float *out, size_t plane,
                       size_t offset, const float lut[256]);
/// As kdad_u8_to_planar for 16-bit samples, scaled by 1/65535.
void kdad_u16_to_planar(const uint16_t *src, size_t count, int channels, float *out, size_t plane,
                        size_t offset);

/// width*height*channels, or 0 if it overflows size_t.
size_t kdad_sample_count(uint32_t width, uint32_t height, int channels);

#endif
