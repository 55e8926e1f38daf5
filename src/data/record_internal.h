/* Internals of fern's record format (src/data/record*.c): constants of the
 * file layout, the schema struct and its serialization, little-endian
 * helpers. The layout itself is documented in include/fern/record.h. */
#ifndef FERN_RECORD_INTERNAL_H
#define FERN_RECORD_INTERNAL_H

#include <stdint.h>
#include <string.h>

#include "data_internal.h"
#include "fern/record.h"

#define REC_MAGIC "FERNREC\0"     /* shard header, 8 bytes  */
#define REC_FOOT_MAGIC "FRECPAGE" /* footer, 8 bytes        */
#define REC_TAIL_MAGIC "FRECEND\0" /* last 8 bytes          */
#define REC_TAIL_LEN 32
#define REC_PAGE_ENTRY 32
#define REC_FOOT_FIXED 28           /* magic + rows + pages + crc */
#define REC_HDR_FIXED 34            /* magic .. set-name length   */
#define REC_MAX_ROW_BYTES ((uint64_t)1 << 30)
#define REC_MAX_PAGE_BYTES ((uint64_t)0xFFFFFFF0u)
#define REC_DEFAULT_PAGE (256 * 1024)
#define REC_DEFAULT_CACHE ((size_t)64 << 20)
#define REC_MAX_SHARDS FERN_RECORD_MAX_SHARDS
#define REC_DB_FORMAT "fern-record"

struct fern_record_schema {
    int n;
    fern_record_field f[FERN_RECORD_MAX_FIELDS];
    /* derived: fixed encoded size of the field, or 0 for STRING/BYTES */
    uint64_t fixed[FERN_RECORD_MAX_FIELDS];
};

static inline void rec_put16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}
static inline void rec_put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static inline void rec_put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static inline uint16_t rec_get16(const unsigned char *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t rec_get32(const unsigned char *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t rec_get64(const unsigned char *p)
{
    return (uint64_t)rec_get32(p) | ((uint64_t)rec_get32(p + 4) << 32);
}

/* Byte-swap n elements of size esz in place on big-endian hosts (the format
 * is little-endian); a no-op on little-endian ones. */
void fern__rec_to_le(void *data, size_t esz, size_t n);

/* double -> float saturating to +-inf (no undefined behaviour). */
float fern__rec_to_f32(double d);

/* Recompute the derived fields of a schema (fixed sizes); 0 or -1 + error. */
int fern__rec_schema_finish(fern_record_schema *s, const char *who);
/* Serialized schema (u16 count + fields) into buf (NULL: just the size). */
size_t fern__rec_schema_encode(const fern_record_schema *s, unsigned char *buf);
/* Parse a serialized schema of exactly n bytes. `what` names the source in
 * errors (file name), base the byte offset of b in it. */
int fern__rec_schema_decode(const unsigned char *b, size_t n, const char *what, uint64_t base,
                            fern_record_schema *out);
/* "name: u8[28,28,1]" for field i */
char *fern__rec_field_str(const fern_record_field *f, char *buf, size_t n);
/* SQL column type for an indexed field, NULL if the field can't be indexed. */
const char *fern__rec_sql_type(const fern_record_field *f);
/* Append `name` as a quoted SQL identifier ("a""b") to buf (size n). */
void fern__rec_sql_ident(char *buf, size_t n, const char *name);

/* For fuzzing only: 0 skips the CRC comparisons so the parsers behind them
 * are reached. Never set by the library itself. */
extern int fern__rec_check_crc;

#endif
