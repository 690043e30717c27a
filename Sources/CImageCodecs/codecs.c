#include "kdad_codecs.h"
int kdad_codecs_version(void) { return 1; }
