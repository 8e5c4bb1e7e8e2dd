/*
 * test_detect.c - the classification detectors: every value test with values that must
 * match and near misses that must not (checksums' negative cases: Luhn-invalid card
 * numbers, IBANs with a wrong check, a wrong length or an unknown country, SSNs in the
 * ranges never issued), the name hints, and the confidence formula.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "classify/detect.h"

typedef bool (*test_fn)(const char *, size_t);

static void yes(test_fn f, const char *s)
{
    if (!f(s, strlen(s)))
        fail_msg("expected a match: '%s'", s);
}

static void no(test_fn f, const char *s)
{
    if (f(s, strlen(s)))
        fail_msg("expected no match: '%s'", s);
}

static void test_email(void **state)
{
    (void)state;
    yes(mesh_detect_email, "alice@example.com");
    yes(mesh_detect_email, "a.b+tag@sub.example.co.uk");
    yes(mesh_detect_email, " bob_o'neil@mail-host.org ");
    no(mesh_detect_email, "alice@");
    no(mesh_detect_email, "@example.com");
    no(mesh_detect_email, "alice@example");
    no(mesh_detect_email, "alice..b@example.com");
    no(mesh_detect_email, ".alice@example.com");
    no(mesh_detect_email, "alice@ex ample.com");
    no(mesh_detect_email, "a@b@example.com");
    no(mesh_detect_email, "alice@example.c0m");
    no(mesh_detect_email, "alice@-example.com");
    no(mesh_detect_email, "alice@example..com");
    no(mesh_detect_email, "");
}

static void test_phone(void **state)
{
    (void)state;
    yes(mesh_detect_phone, "+33 6 12 34 56 78");
    yes(mesh_detect_phone, "+1 (555) 123-4567");
    yes(mesh_detect_phone, "+41795550102");
    yes(mesh_detect_phone, "06 12 34 56 78");
    yes(mesh_detect_phone, "06.12.34.56.78");
    yes(mesh_detect_phone, "0612345678");
    yes(mesh_detect_phone, "(555) 123-4567");
    yes(mesh_detect_phone, "555-123-4567");
    yes(mesh_detect_phone, "020 7946 0958");
    yes(mesh_detect_phone, "0041 79 555 01 02");
    no(mesh_detect_phone, "123-45-6789");  /* an SSN's shape */
    no(mesh_detect_phone, "2024-01-02");   /* a date */
    no(mesh_detect_phone, "14.03.1950");   /* a date */
    no(mesh_detect_phone, "192.168.1.10"); /* an address */
    no(mesh_detect_phone, "12345678");     /* a bare integer */
    no(mesh_detect_phone, "48.8566123");   /* a number */
    no(mesh_detect_phone, "+0123456789");  /* no country code starts with 0 */
    no(mesh_detect_phone, "+123");
    no(mesh_detect_phone, "call me");
    no(mesh_detect_phone, "(555 123-4567");
    no(mesh_detect_phone, "1234567890123456789");
}

static void test_person_name(void **state)
{
    (void)state;
    yes(mesh_detect_person_name, "Alice Martin");
    yes(mesh_detect_person_name, "Jean-Luc Picard");
    yes(mesh_detect_person_name, "Ludwig van Beethoven");
    yes(mesh_detect_person_name, "Martin, Alice");
    yes(mesh_detect_person_name, "Se\xc3\xa1n O'Neil");
    yes(mesh_detect_person_name, "Zo\xc3\xab Keller");
    yes(mesh_detect_person_name, "Ronald McDonald");
    yes(mesh_detect_person_name, "John F. Kennedy");
    no(mesh_detect_person_name, "alice martin");
    no(mesh_detect_person_name, "ALICE MARTIN");
    no(mesh_detect_person_name, "Alice");
    no(mesh_detect_person_name, "One Two Three Four Five");
    no(mesh_detect_person_name, "Machine 7");
    no(mesh_detect_person_name, "Line A");
    no(mesh_detect_person_name, "Alice  Martin");
    no(mesh_detect_person_name, "Alice Martin3");
    no(mesh_detect_person_name, "Martin,Alice");
}

static bool dob(const char *s, size_t n)
{
    return mesh_detect_birth_date(s, n, 2026);
}

static void test_birth_date(void **state)
{
    (void)state;
    yes(dob, "1950-03-14");
    yes(dob, "14/03/1950");
    yes(dob, "03/14/1950");
    yes(dob, "14.03.1950");
    yes(dob, "1950-03-14T00:00:00Z");
    yes(dob, "2000-02-29"); /* a leap year */
    no(dob, "1900-02-29");  /* not one */
    no(dob, "2150-01-01");  /* not born yet */
    no(dob, "1850-01-01");
    no(dob, "1950-02-30");
    no(dob, "1950-13-01");
    no(dob, "1950/03/14");
    no(dob, "14-03-50");
    no(dob, "not a date");
    no(dob, "19500314");
}

static void test_ssn(void **state)
{
    (void)state;
    yes(mesh_detect_ssn, "123-45-6789");
    yes(mesh_detect_ssn, "536 22 1234");
    no(mesh_detect_ssn, "000-12-3456"); /* area 000 */
    no(mesh_detect_ssn, "666-12-3456"); /* area 666 */
    no(mesh_detect_ssn, "900-12-3456"); /* areas 900-999 */
    no(mesh_detect_ssn, "999-12-3456");
    no(mesh_detect_ssn, "123-00-4567"); /* group 00 */
    no(mesh_detect_ssn, "123-45-0000"); /* serial 0000 */
    no(mesh_detect_ssn, "078-05-1120"); /* the Woolworth wallet card */
    no(mesh_detect_ssn, "219-09-9999"); /* advertising */
    no(mesh_detect_ssn, "123-45-678");
    no(mesh_detect_ssn, "123-456-789");
    no(mesh_detect_ssn, "123-45 6789");
    no(mesh_detect_ssn, "123456789");
    no(mesh_detect_ssn, "12a-45-6789");
}

static void test_iban(void **state)
{
    (void)state;
    yes(mesh_detect_iban, "GB82WEST12345698765432");
    yes(mesh_detect_iban, "GB82 WEST 1234 5698 7654 32");
    yes(mesh_detect_iban, "DE89370400440532013000");
    yes(mesh_detect_iban, "FR1420041010050500013M02606");
    yes(mesh_detect_iban, "NL91ABNA0417164300");
    yes(mesh_detect_iban, "CH9300762011623852957");
    yes(mesh_detect_iban, "BE68539007547034");
    yes(mesh_detect_iban, "NO9386011117947");
    yes(mesh_detect_iban, "IT60X0542811101000000123456");
    yes(mesh_detect_iban, "de89370400440532013000"); /* lower case is read as upper */
    no(mesh_detect_iban, "GB82WEST12345698765433");  /* mod 97 fails */
    no(mesh_detect_iban, "DE89370400440532013001");
    no(mesh_detect_iban, "DE88370400440532013000"); /* wrong check digits */
    no(mesh_detect_iban, "XX89370400440532013000"); /* no such country */
    no(mesh_detect_iban, "GB82WEST123456987654");   /* too short for GB */
    no(mesh_detect_iban, "DE8937040044053201300X");
    no(mesh_detect_iban, "DE89-3704-0044-0532-0130-00");
    no(mesh_detect_iban, "1234567890123456");
    assert_int_equal(mesh_iban_mod97("GB82WEST12345698765432", 22), 1);
    assert_int_equal(mesh_iban_mod97("GB82WEST12345698765433", 22), 28);
    assert_int_equal(mesh_iban_mod97("GB82-WEST", 9), -1);
}

static void test_card(void **state)
{
    (void)state;
    yes(mesh_detect_card, "4111111111111111");    /* Visa */
    yes(mesh_detect_card, "4111 1111 1111 1111"); /* with spaces */
    yes(mesh_detect_card, "4111-1111-1111-1111"); /* with dashes */
    yes(mesh_detect_card, "5555555555554444");    /* Mastercard */
    yes(mesh_detect_card, "2223003122003222");    /* Mastercard 2-series */
    yes(mesh_detect_card, "378282246310005");     /* American Express */
    yes(mesh_detect_card, "6011111111111117");    /* Discover */
    yes(mesh_detect_card, "3530111333300000");    /* JCB */
    yes(mesh_detect_card, "30569309025904");      /* Diners Club */
    no(mesh_detect_card, "4111111111111112");     /* Luhn fails */
    no(mesh_detect_card, "5555555555554445");
    no(mesh_detect_card, "378282246310006");
    no(mesh_detect_card, "411111111111111");     /* Visa has no 15-digit numbers */
    no(mesh_detect_card, "9111111111111119");    /* no such issuer (Luhn-valid) */
    no(mesh_detect_card, "0000000000000000");    /* Luhn-valid, no issuer */
    no(mesh_detect_card, "4111-1111 1111-1111"); /* mixed separators */
    no(mesh_detect_card, "4111111111111111111111");
    no(mesh_detect_card, "41111111111x1111");
    assert_true(mesh_luhn_ok("79927398713", 11));
    assert_false(mesh_luhn_ok("79927398710", 11));
    assert_false(mesh_luhn_ok("", 0));
}

static void test_network(void **state)
{
    (void)state;
    yes(mesh_detect_ipv4, "192.168.1.10");
    yes(mesh_detect_ipv4, "10.0.0.1");
    no(mesh_detect_ipv4, "256.1.1.1");
    no(mesh_detect_ipv4, "1.2.3");
    no(mesh_detect_ipv4, "01.02.03.04");
    no(mesh_detect_ipv4, "1.2.3.4.5");
    yes(mesh_detect_ipv6, "2001:db8::1");
    yes(mesh_detect_ipv6, "fe80::1%eth0");
    yes(mesh_detect_ipv6, "::ffff:192.0.2.1");
    no(mesh_detect_ipv6, "12:30:45");
    no(mesh_detect_ipv6, "2001:db8:::1");
    no(mesh_detect_ipv6, "00:1A:2B:3C:4D:5E");
    yes(mesh_detect_mac, "00:1A:2B:3C:4D:5E");
    yes(mesh_detect_mac, "00-1a-2b-3c-4d-5e");
    yes(mesh_detect_mac, "001a.2b3c.4d5e");
    no(mesh_detect_mac, "00:00:00:00:00:00");
    no(mesh_detect_mac, "00:1A:2B:3C:4D");
    no(mesh_detect_mac, "00:1A-2B:3C:4D:5E");
    no(mesh_detect_mac, "GG:1A:2B:3C:4D:5E");
    no(mesh_detect_mac, "001a.2b3c-4d5e");
}

static void test_mrn_location(void **state)
{
    (void)state;
    yes(mesh_detect_mrn, "MRN-0012345");
    yes(mesh_detect_mrn, "00123456");
    yes(mesh_detect_mrn, "H1234567");
    no(mesh_detect_mrn, "12");
    no(mesh_detect_mrn, "ABCDE12345");
    no(mesh_detect_mrn, "MRN-12");
    no(mesh_detect_mrn, "MRN-12345678901");
    yes(mesh_detect_geohash, "u09tunq");
    yes(mesh_detect_geohash, "gcpvj0d");
    no(mesh_detect_geohash, "hello");
    no(mesh_detect_geohash, "abc12"); /* 'a' is not in the alphabet */
    no(mesh_detect_geohash, "12345");
    yes(mesh_detect_latlon_text, "48.8566, 2.3522");
    yes(mesh_detect_latlon_text, "-33.86,151.20");
    yes(mesh_detect_latlon_text, "48.8566 2.3522");
    no(mesh_detect_latlon_text, "100.0,2.0");
    no(mesh_detect_latlon_text, "48.1,200.5");
    no(mesh_detect_latlon_text, "48,2");
    no(mesh_detect_latlon_text, "a.b,c.d");
    /* numbers in range count only when the name says latitude or longitude */
    mesh_detect_value_t v = {.s = "48.85", .n = 5, .is_num = true, .d = 48.85};
    assert_true(mesh_detect_value(MESH_INFO_LOCATION, &v, MESH_LOC_LATITUDE, 2026));
    assert_false(mesh_detect_value(MESH_INFO_LOCATION, &v, MESH_LOC_NONE, 2026));
    v.d = 120;
    assert_false(mesh_detect_value(MESH_INFO_LOCATION, &v, MESH_LOC_LATITUDE, 2026));
    assert_true(mesh_detect_value(MESH_INFO_LOCATION, &v, MESH_LOC_LONGITUDE, 2026));
    /* a phone number needs text: a number column lost its leading 0 or + */
    mesh_detect_value_t p = {.s = "0612345678", .n = 10, .is_num = true, .d = 612345678};
    assert_false(mesh_detect_value(MESH_INFO_PHONE, &p, MESH_LOC_NONE, 2026));
    p.is_num = false;
    assert_true(mesh_detect_value(MESH_INFO_PHONE, &p, MESH_LOC_NONE, 2026));
    /* a card number may be stored as an integer */
    mesh_detect_value_t c = {.s = "4111111111111111", .n = 16, .is_num = true, .d = 4.1e15};
    assert_true(mesh_detect_value(MESH_INFO_CARD_NUMBER, &c, MESH_LOC_NONE, 2026));
}

static void test_hints(void **state)
{
    (void)state;
    static const struct {
        mesh_info_type_t t;
        const char *name;
        bool hint;
    } cases[] = {
        {MESH_INFO_EMAIL, "customer_email", true},
        {MESH_INFO_EMAIL, "EmailAddress", true},
        {MESH_INFO_EMAIL, "status", false},
        {MESH_INFO_PHONE, "phoneNumber", true},
        {MESH_INFO_PHONE, "mobile2", true},
        {MESH_INFO_PHONE, "device", false},
        {MESH_INFO_PERSON_NAME, "patient_name", true},
        {MESH_INFO_PERSON_NAME, "lastName", true},
        {MESH_INFO_PERSON_NAME, "surname", true},
        {MESH_INFO_PERSON_NAME, "device_name", false},
        {MESH_INFO_PERSON_NAME, "hostname", false},
        {MESH_INFO_PERSON_NAME, "user_name", false},
        {MESH_INFO_PERSON_NAME, "file_name", false},
        {MESH_INFO_DATE_OF_BIRTH, "dob", true},
        {MESH_INFO_DATE_OF_BIRTH, "date_of_birth", true},
        {MESH_INFO_DATE_OF_BIRTH, "birthDate", true},
        {MESH_INFO_DATE_OF_BIRTH, "patientDOB", true},
        {MESH_INFO_DATE_OF_BIRTH, "admitted", false},
        {MESH_INFO_NATIONAL_ID, "ssn", true},
        {MESH_INFO_NATIONAL_ID, "national_id", true},
        {MESH_INFO_NATIONAL_ID, "social_security_number", true},
        {MESH_INFO_NATIONAL_ID, "session", false},
        {MESH_INFO_IBAN, "iban", true},
        {MESH_INFO_IBAN, "bank_account", true},
        {MESH_INFO_IBAN, "account", false},
        {MESH_INFO_CARD_NUMBER, "card_number", true},
        {MESH_INFO_CARD_NUMBER, "creditCard", true},
        {MESH_INFO_CARD_NUMBER, "order_ref", false},
        {MESH_INFO_IP_ADDRESS, "client_ip", true},
        {MESH_INFO_IP_ADDRESS, "ipAddress", true},
        {MESH_INFO_IP_ADDRESS, "ipv6", true},
        {MESH_INFO_IP_ADDRESS, "remote_addr", true},
        {MESH_INFO_IP_ADDRESS, "zip", false},
        {MESH_INFO_IP_ADDRESS, "address", false},
        {MESH_INFO_MAC_ADDRESS, "mac", true},
        {MESH_INFO_MAC_ADDRESS, "mac_address", true},
        {MESH_INFO_MAC_ADDRESS, "machine", false},
        {MESH_INFO_MEDICAL_RECORD_NUMBER, "mrn", true},
        {MESH_INFO_MEDICAL_RECORD_NUMBER, "patient_id", true},
        {MESH_INFO_MEDICAL_RECORD_NUMBER, "medical_record_number", true},
        {MESH_INFO_MEDICAL_RECORD_NUMBER, "patient", false},
        {MESH_INFO_LOCATION, "lat", true},
        {MESH_INFO_LOCATION, "longitude", true},
        {MESH_INFO_LOCATION, "geohash", true},
        {MESH_INFO_LOCATION, "temp", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (mesh_detect_hint(cases[i].t, cases[i].name) != cases[i].hint)
            fail_msg("hint %s for '%s': expected %d", mesh_info_tag(cases[i].t), cases[i].name,
                     cases[i].hint);
    assert_int_equal(mesh_detect_loc_hint("lat"), MESH_LOC_LATITUDE);
    assert_int_equal(mesh_detect_loc_hint("gps_lng"), MESH_LOC_LONGITUDE);
    assert_int_equal(mesh_detect_loc_hint("geohash"), MESH_LOC_POINT);
    assert_int_equal(mesh_detect_loc_hint("temp"), MESH_LOC_NONE);
    /* a very long name is cut, not overflowed */
    char longname[600];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_false(mesh_detect_hint(MESH_INFO_EMAIL, longname));
}

static void test_confidence(void **state)
{
    (void)state;
    /* strong shapes need no name */
    assert_true(mesh_detect_confidence(MESH_INFO_EMAIL, false, 100, 100) == 0.95);
    assert_true(mesh_detect_confidence(MESH_INFO_EMAIL, true, 100, 100) == 1.0);
    assert_true(mesh_detect_confidence(MESH_INFO_CARD_NUMBER, false, 50, 100) == 0.45);
    /* a name without agreeing values says little */
    assert_true(mesh_detect_confidence(MESH_INFO_CARD_NUMBER, true, 0, 100) == 0.1);
    assert_true(mesh_detect_confidence(MESH_INFO_IBAN, false, 0, 100) == 0.0);
    /* weak shapes need the name */
    assert_true(mesh_detect_confidence(MESH_INFO_PERSON_NAME, false, 10, 10) == 0.35);
    assert_true(mesh_detect_confidence(MESH_INFO_PERSON_NAME, true, 10, 10) == 1.0);
    assert_true(mesh_detect_confidence(MESH_INFO_MEDICAL_RECORD_NUMBER, false, 10, 10) == 0.0);
    assert_true(mesh_detect_confidence(MESH_INFO_MEDICAL_RECORD_NUMBER, true, 10, 10) == 0.9);
    assert_true(mesh_detect_confidence(MESH_INFO_DATE_OF_BIRTH, false, 10, 10) == 0.1);
    assert_true(mesh_detect_confidence(MESH_INFO_DATE_OF_BIRTH, true, 10, 10) == 0.9);
    assert_true(mesh_detect_confidence(MESH_INFO_LOCATION, true, 10, 10) == 1.0);
    /* nothing sampled: the name alone */
    assert_true(mesh_detect_confidence(MESH_INFO_DATE_OF_BIRTH, true, 0, 0) == 0.25);
    assert_true(mesh_detect_confidence(MESH_INFO__COUNT, true, 1, 1) == 0.0);
    /* never above 1, never below 0, even with bad counts */
    assert_true(mesh_detect_confidence(MESH_INFO_PHONE, true, 200, 100) == 1.0);
    assert_true(mesh_detect_confidence(MESH_INFO_PHONE, false, -5, 100) == 0.0);
    /* the tables */
    assert_string_equal(mesh_info_tag(MESH_INFO_CARD_NUMBER), "card_number");
    assert_int_equal(mesh_info_parse("IBAN"), MESH_INFO_IBAN);
    assert_int_equal(mesh_info_parse("nope"), MESH_INFO__COUNT);
    assert_int_equal(mesh_info_level(MESH_INFO_CARD_NUMBER), MESH_LEVEL_RESTRICTED);
    assert_true(mesh_info_categories(MESH_INFO_MEDICAL_RECORD_NUMBER) & MESH_CAT_PHI);
    assert_int_equal(mesh_level_parse("Confidential"), MESH_LEVEL_CONFIDENTIAL);
    assert_int_equal(mesh_level_parse("secret"), MESH_LEVEL_NONE);
    assert_string_equal(mesh_level_name(MESH_LEVEL_RESTRICTED), "restricted");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_email),        cmocka_unit_test(test_phone),
        cmocka_unit_test(test_person_name),  cmocka_unit_test(test_birth_date),
        cmocka_unit_test(test_ssn),          cmocka_unit_test(test_iban),
        cmocka_unit_test(test_card),         cmocka_unit_test(test_network),
        cmocka_unit_test(test_mrn_location), cmocka_unit_test(test_hints),
        cmocka_unit_test(test_confidence),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
