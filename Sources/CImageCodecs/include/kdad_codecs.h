// Placeholder: the image I/O work fills this in.
#ifndef KDAD_CODECS_H
#define KDAD_CODECS_H
int kdad_codecs_version(void);
#endif
