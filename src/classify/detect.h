/*
 * detect.h - what a column holds, guessed from its name and from sampled values: the
 * info types of sensitive data (email, phone, person name, date of birth, national id, IBAN,
 * card number, IP address, MAC address, medical record number, location), the categories
 * they belong to (PII, PHI) and the classification level they call for.
 *
 * Every function here is pure: no allocation, no I/O, no global state; values are borrowed
 * (const char *s, size_t n) and never kept. Each detector checks one value's shape and, where
 * the info type has one, its checksum (Luhn for card numbers, ISO 7064 mod 97-10 for IBANs)
 * or its invalid ranges (US SSNs).
 *
 * Confidence of "column C holds info type T" (docs/governance.md, "How confident"):
 *
 *     f = matched / non_null        (the fraction of sampled non-NULL values T's test passes;
 *                                    0 when nothing was sampled)
 *     h = 1 when C's name hints at T, else 0
 *     confidence = min(1, s_T * f + h * (b0_T + b1_T * f))
 *
 * s_T is how much the values alone say (high for shapes with checksums, 0 for a number that
 * is merely in a latitude's range), b0_T what the name alone says, b1_T what the name says
 * when the values agree. The table in detect.c holds them per type.
 */
#ifndef MESH_CLASSIFY_DETECT_H
#define MESH_CLASSIFY_DETECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Classification levels, lowest first. */
typedef enum {
    MESH_LEVEL_NONE = 0,
    MESH_LEVEL_PUBLIC,
    MESH_LEVEL_INTERNAL,
    MESH_LEVEL_CONFIDENTIAL,
    MESH_LEVEL_RESTRICTED,
} mesh_level_t;

/* "public", "internal", ...; "" for NONE. */
const char *mesh_level_name(mesh_level_t l);
/* The level of a name (case-insensitive), MESH_LEVEL_NONE when it is not one. */
mesh_level_t mesh_level_parse(const char *s);

#define MESH_CAT_PII 0x1u
#define MESH_CAT_PHI 0x2u

/* X(enum, tag, categories, level): the info types. tag is the column tag an approval adds. */
#define MESH_INFO_TYPE_MAP(X)                                                                      \
    X(EMAIL, "email", MESH_CAT_PII, MESH_LEVEL_CONFIDENTIAL)                                       \
    X(PHONE, "phone", MESH_CAT_PII, MESH_LEVEL_CONFIDENTIAL)                                       \
    X(PERSON_NAME, "person_name", MESH_CAT_PII, MESH_LEVEL_CONFIDENTIAL)                           \
    X(DATE_OF_BIRTH, "date_of_birth", MESH_CAT_PII, MESH_LEVEL_CONFIDENTIAL)                       \
    X(NATIONAL_ID, "national_id", MESH_CAT_PII, MESH_LEVEL_RESTRICTED)                             \
    X(IBAN, "iban", MESH_CAT_PII, MESH_LEVEL_RESTRICTED)                                           \
    X(CARD_NUMBER, "card_number", MESH_CAT_PII, MESH_LEVEL_RESTRICTED)                             \
    X(IP_ADDRESS, "ip_address", MESH_CAT_PII, MESH_LEVEL_CONFIDENTIAL)                             \
    X(MAC_ADDRESS, "mac_address", MESH_CAT_PII, MESH_LEVEL_CONFIDENTIAL)                           \
    X(MEDICAL_RECORD_NUMBER, "medical_record_number", MESH_CAT_PII | MESH_CAT_PHI,                 \
      MESH_LEVEL_RESTRICTED)                                                                       \
    X(LOCATION, "location", MESH_CAT_PII, MESH_LEVEL_CONFIDENTIAL)

typedef enum {
#define MESH_X_ENUM(e, tag, cats, level) MESH_INFO_##e,
    MESH_INFO_TYPE_MAP(MESH_X_ENUM)
#undef MESH_X_ENUM
        MESH_INFO__COUNT
} mesh_info_type_t;

/* The tag of an info type ("email"), its categories (MESH_CAT_*) and its level. */
const char *mesh_info_tag(mesh_info_type_t t);
unsigned mesh_info_categories(mesh_info_type_t t);
mesh_level_t mesh_info_level(mesh_info_type_t t);
/* The info type of a tag (case-insensitive); MESH_INFO__COUNT when it is not one. */
mesh_info_type_t mesh_info_parse(const char *tag);

/* ---- name hints ---- */

/* What a column's name says about location values: which test applies to them. */
typedef enum {
    MESH_LOC_NONE = 0,
    MESH_LOC_LATITUDE,  /* lat, latitude: a number in [-90, 90] */
    MESH_LOC_LONGITUDE, /* lon, lng, longitude: a number in [-180, 180] */
    MESH_LOC_POINT,     /* location, geo, gps, geohash, coordinates: a geohash or "lat,lon" */
} mesh_loc_hint_t;

/* Whether a column's name hints at t. Names are split into lower-case words at '_', '-',
 * '.', spaces, digits and camelCase humps ("patientDOB" -> patient, dob). */
bool mesh_detect_hint(mesh_info_type_t t, const char *name);
/* The location kind a column's name hints at. */
mesh_loc_hint_t mesh_detect_loc_hint(const char *name);

/* ---- value tests (true when the whole value has the shape, checksum included) ---- */

bool mesh_detect_email(const char *s, size_t n);
/* E.164 (+ and 8-15 digits) or a national format (9-11 digits, starting with 0 or written
 * in groups); never an SSN's 3-2-4 shape, never a bare integer without a leading 0. */
bool mesh_detect_phone(const char *s, size_t n);
/* Two to four capitalised words ("Alice Martin", "Jean-Luc O'Neil"), or "Martin, Alice". */
bool mesh_detect_person_name(const char *s, size_t n);
/* A calendar date a person alive could be born on: 1900-01-01 up to today
 * (now_year is the current year), as YYYY-MM-DD (optionally followed by a time), DD/MM/YYYY,
 * MM/DD/YYYY or DD.MM.YYYY. */
bool mesh_detect_birth_date(const char *s, size_t n, int now_year);
/* A US social security number AAA-GG-SSSS (or with spaces): area not 000, 666 or 900-999,
 * group not 00, serial not 0000, not one of the numbers published in advertising. */
bool mesh_detect_ssn(const char *s, size_t n);
/* An IBAN (spaces allowed): a known country, its length, and the mod 97-10 check (== 1). */
bool mesh_detect_iban(const char *s, size_t n);
/* A payment card number (spaces or dashes allowed): a known issuer prefix with one of its
 * lengths, and the Luhn check. */
bool mesh_detect_card(const char *s, size_t n);
bool mesh_detect_ipv4(const char *s, size_t n);
bool mesh_detect_ipv6(const char *s, size_t n);
/* 01:23:45:67:89:ab, 01-23-45-67-89-AB or 0123.4567.89ab (not all zero). */
bool mesh_detect_mac(const char *s, size_t n);
/* A medical record number's shape: up to 4 letters, an optional separator, 5-10 digits. The
 * shape is common, so alone it says little (its s is 0): the name must hint at it. */
bool mesh_detect_mrn(const char *s, size_t n);
/* A geohash of 5-12 characters of its alphabet, with at least one digit and one letter. */
bool mesh_detect_geohash(const char *s, size_t n);
/* "lat,lon" (or "lat, lon", "lat lon") with both in range and a decimal point in each. */
bool mesh_detect_latlon_text(const char *s, size_t n);

/* Luhn's check over the digits of s[0..n) (other characters skipped); false when no digit. */
bool mesh_luhn_ok(const char *s, size_t n);
/* The ISO 7064 mod 97-10 remainder of an IBAN's text (after moving the first four
 * characters to the end and letters to 10..35); -1 when a character is not alphanumeric. */
int mesh_iban_mod97(const char *s, size_t n);

/*
 * One value tested as t. text is the value as text (numbers written in decimal), d/is_num
 * its number when it is one, loc the column's location hint, now_year the current year.
 */
typedef struct mesh_detect_value {
    const char *s;
    size_t n;
    bool is_num;
    double d;
} mesh_detect_value_t;
bool mesh_detect_value(mesh_info_type_t t, const mesh_detect_value_t *v, mesh_loc_hint_t loc,
                       int now_year);

/* The confidence formula above. */
double mesh_detect_confidence(mesh_info_type_t t, bool hint, int64_t matched, int64_t non_null);

#endif
