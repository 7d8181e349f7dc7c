/* numaheap: guest specs from libvirt domain XML, xl.cfg and JSON through the
 * C API (C11 and C++). Host library only (libnumaheap.a): reading admins'
 * files is the toolstack's job. The C++ API is numaheap/guest_spec_io.h;
 * docs/guests.md lists every accepted form and the mapping.
 *
 * A parse gives a numaheap_guest_list: its guests as numaheap_guest_spec
 * (ready for numaheap_place / numaheap_guest_create; the pointers inside
 * stay valid until the list is freed) and its warnings (what was read but
 * not used, and why). Errors: NUMAHEAP_E_PARSE_ERROR with "SOURCE:LINE[:COL]: what"
 * in `err`; nothing is allocated then.
 * Thread safety: a list is immutable; distinct calls are independent.
 */
#ifndef NUMAHEAP_NUMAHEAP_GUEST_IO_H
#define NUMAHEAP_NUMAHEAP_GUEST_IO_H

#include <stddef.h>
#include <stdint.h>

#include "numaheap/numaheap.h"
#include "numaheap/numaheap_guest.h"
#include "numaheap/export.h"

NUMAHEAP_PUBLIC_BEGIN

#ifdef __cplusplus
extern "C" {
#endif

#define NUMAHEAP_GUEST_FORMAT_DETECT 0  /* by extension, then content */
#define NUMAHEAP_GUEST_FORMAT_JSON 1
#define NUMAHEAP_GUEST_FORMAT_LIBVIRT 2 /* libvirt domain XML */
#define NUMAHEAP_GUEST_FORMAT_XL 3      /* xl.cfg */

typedef struct numaheap_guest_list numaheap_guest_list;

/* The format of `text` (len bytes) named `source` (may be NULL):
 * NUMAHEAP_GUEST_FORMAT_JSON, _LIBVIRT or _XL. */
int numaheap_guest_format_detect(const char* source, const char* text, size_t len);

/* Parses len bytes of text; source names it in messages (NULL: "input");
 * format is NUMAHEAP_GUEST_FORMAT_*; sysfs_root is where <hostdev> PCI
 * devices' numa_node files are read (NULL or "": "/"). */
int numaheap_guests_parse(const char* text, size_t len, const char* source, int format,
                          const char* sysfs_root, numaheap_guest_list** out, char* err,
                          size_t err_len);
/* The same from a file. */
int numaheap_guests_load(const char* path, int format, const char* sysfs_root,
                         numaheap_guest_list** out, char* err, size_t err_len);

size_t numaheap_guest_list_count(const numaheap_guest_list* l);
/* Guest `index` as a C spec (NUMAHEAP_E_INVALID_ARGUMENT past the end). */
int numaheap_guest_list_spec(const numaheap_guest_list* l, size_t index, numaheap_guest_spec* out);
size_t numaheap_guest_list_warning_count(const numaheap_guest_list* l);
/* Warning `index` (NULL past the end), valid until the list is freed. */
const char* numaheap_guest_list_warning(const numaheap_guest_list* l, size_t index);
void numaheap_guest_list_free(numaheap_guest_list* l);

/* A libvirt memory size in bytes (unit as libvirt scales it, case-
 * insensitive; NULL or "" = KiB). NUMAHEAP_E_PARSE_ERROR: unknown unit or too
 * large. */
int numaheap_libvirt_size(uint64_t value, const char* unit, uint64_t* bytes);
/* An id list ("0-3,^2,8") below limit, ascending: writes up to cap ids,
 * *count gets how many there are. NUMAHEAP_E_PARSE_ERROR on bad syntax. */
int numaheap_id_list_parse(const char* text, uint64_t limit, uint32_t* out, size_t cap,
                           size_t* count);

#ifdef __cplusplus
}
#endif

NUMAHEAP_PUBLIC_END

#endif /* NUMAHEAP_NUMAHEAP_GUEST_IO_H */
