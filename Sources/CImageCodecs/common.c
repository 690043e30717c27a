#include "codecs_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void kdad_format_message_v(char *message, size_t capacity, const char *format, va_list args) {
    if (message == NULL || capacity == 0) return;
    vsnprintf(message, capacity, format, args);
    message[capacity - 1] = '\0';
}

void kdad_format_message(char *message, size_t capacity, const char *format, ...) {
    va_list args;
    va_start(args, format);
    kdad_format_message_v(message, capacity, format, args);
    va_end(args);
}

void kdad_buffer_free(kdad_buffer *buffer) {
    if (buffer == NULL) return;
    free(buffer->bytes);
    buffer->bytes = NULL;
    buffer->size = 0;
    buffer->capacity = 0;
}

int kdad_buffer_reserve(kdad_buffer *buffer, size_t extra) {
    if (extra > SIZE_MAX - buffer->size) return 0;
    size_t needed = buffer->size + extra;
    if (needed <= buffer->capacity) return 1;
    size_t capacity = buffer->capacity < 4096 ? 4096 : buffer->capacity;
    while (capacity < needed) {
        if (capacity > SIZE_MAX / 2) { capacity = needed; break; }
        capacity *= 2;
    }
    uint8_t *grown = realloc(buffer->bytes, capacity);
    if (grown == NULL) return 0;
    buffer->bytes = grown;
    buffer->capacity = capacity;
    return 1;
}

void kdad_fill_lut8(float lut[256]) {
    for (int v = 0; v < 256; v++) lut[v] = (float)v / 255.0f;
}

void kdad_u8_to_planar(const uint8_t *src, size_t count, int channels, float *out, size_t plane,
                       size_t offset, const float lut[256]) {
    if (channels == 1) {
        float *dst = out + offset;
        for (size_t i = 0; i < count; i++) dst[i] = lut[src[i]];
        return;
    }
    for (int c = 0; c < channels; c++) {
        float *dst = out + (size_t)c * plane + offset;
        const uint8_t *s = src + c;
        for (size_t i = 0; i < count; i++) dst[i] = lut[s[i * (size_t)channels]];
    }
}

void kdad_u16_to_planar(const uint16_t *src, size_t count, int channels, float *out, size_t plane,
                        size_t offset) {
    // A true division (not a multiply by 1/65535) so that every value is the correctly rounded
    // v/65535 and round(f * 65535) recovers v exactly.
    for (int c = 0; c < channels; c++) {
        float *dst = out + (size_t)c * plane + offset;
        const uint16_t *s = src + c;
        for (size_t i = 0; i < count; i++) dst[i] = (float)s[i * (size_t)channels] / 65535.0f;
    }
}

size_t kdad_sample_count(uint32_t width, uint32_t height, int channels) {
    if (channels <= 0) return 0;
    size_t pixels = (size_t)width * (size_t)height;  // 64-bit size_t: cannot overflow from 32x32
    if (height != 0 && pixels / height != width) return 0;
    if (pixels > SIZE_MAX / (size_t)channels) return 0;
    return pixels * (size_t)channels;
}
