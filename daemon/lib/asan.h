/* AddressSanitizer's poisoning, for memory a module keeps to use again
 * (an arena's free bytes, a kept struct call): under ASan (gcc's or
 * clang's) MCPD_ASAN is defined and a poisoned byte's use is reported as
 * one of freed memory would be; without it the macros do nothing. */
#ifndef MCPD_ASAN_H
#define MCPD_ASAN_H

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MCPD_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(MCPD_ASAN)
#define MCPD_ASAN 1
#endif

#ifdef MCPD_ASAN
#include <sanitizer/asan_interface.h>
#define MCPD_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define MCPD_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define MCPD_POISON(p, n) ((void)(p), (void)(n))
#define MCPD_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#endif
