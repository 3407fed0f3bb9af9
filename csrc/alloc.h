/*
 * alloc.h — the core's own allocations (pool.c).
 *
 * They come from the pool libosip2 allocates from, so that the core's
 * strings and objects skip glibc's slow paths as libosip2's do, and a
 * block may be freed by either side. sr__free also takes a plain
 * malloc'd block (pool.c tells them apart by its header).
 */
#ifndef SR_ALLOC_H
#define SR_ALLOC_H

#include <stddef.h>

void *sr__malloc(size_t size);
void *sr__calloc(size_t n, size_t size);
void *sr__realloc(void *p, size_t size);
char *sr__strdup(const char *s); /* NULL for NULL (an unset option) */
char *sr__strndup(const char *s, size_t n);
void sr__free(void *p);

#endif
