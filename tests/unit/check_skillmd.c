#include <check.h>
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "skillmd.h"
#include "suites.h"
#include "util.h"

/* daemon/lib/skillmd.c: a SKILL.md's front matter, read as JSON and
 * checked, its errors placed at the file's own lines. */

static int
parse(const char *text, const char *expect, struct skillmd *md, struct errlist *errs)
{
	memset(errs, 0, sizeof(*errs));
	return skillmd_parse("s/SKILL.md", text, strlen(text), expect, md, errs);
}

static int
has_error(const struct errlist *errs, const char *want)
{
	for (size_t i = 0; i < errs->kept; i++)
		if (strstr(errs->msgs[i], want) != NULL)
			return 1;
	return 0;
}

START_TEST(skillmd_reads_front_matter)
{
	struct skillmd md;
	struct errlist errs;
	const char *text = "---\nname: pdf-tools\ndescription: \"Fill PDF forms: ${NOT_EXPANDED}\"\n"
	    "license: Apache-2.0\nversion: 1.5\nenabled: true\nmetadata:\n  author: ops\n"
	    "tags: [a, b]\n---\n# Body\n---\nnot front matter\n";
	ck_assert_int_eq(parse(text, "pdf-tools", &md, &errs), 0);
	ck_assert_uint_eq(errs.n, 0);
	ck_assert_str_eq(md.name, "pdf-tools");
	ck_assert_str_eq(md.description, "Fill PDF forms: ${NOT_EXPANDED}");
	char *json = cJSON_PrintUnformatted(md.frontmatter);
	ck_assert_str_eq(json, "{\"name\":\"pdf-tools\",\"description\":\"Fill PDF forms: ${NOT_EXPANDED}\","
	    "\"license\":\"Apache-2.0\",\"version\":1.5,\"enabled\":true,\"metadata\":{\"author\":\"ops\"},"
	    "\"tags\":[\"a\",\"b\"]}");
	free(json);
	cJSON_Delete(md.frontmatter);
	errlist_free(&errs);
}
END_TEST

START_TEST(skillmd_bom_crlf_and_closing_blanks)
{
	struct skillmd md;
	struct errlist errs;
	const char *text = "\xef\xbb\xbf---\r\nname: a1\r\ndescription: d\r\n---  \r\nbody";
	ck_assert_int_eq(parse(text, NULL, &md, &errs), 0);
	ck_assert_str_eq(md.name, "a1");
	ck_assert_str_eq(md.description, "d");
	cJSON_Delete(md.frontmatter);
	errlist_free(&errs);
	/* the closing fence may be the file's last line, with no newline */
	ck_assert_int_eq(parse("---\nname: b\ndescription: e\n---", NULL, &md, &errs), 0);
	cJSON_Delete(md.frontmatter);
	errlist_free(&errs);
}
END_TEST

START_TEST(skillmd_missing_fences)
{
	struct skillmd md;
	struct errlist errs;
	ck_assert_int_eq(parse("# no front matter\n", NULL, &md, &errs), -1);
	ck_assert(has_error(&errs, "s/SKILL.md:1:1: a SKILL.md must begin with its front matter"));
	ck_assert_ptr_null(md.frontmatter);
	errlist_free(&errs);
	ck_assert_int_eq(parse("--- \nname: a\n---\n", NULL, &md, &errs), -1);
	errlist_free(&errs);
	ck_assert_int_eq(parse("---\nname: a\ndescription: b\n", NULL, &md, &errs), -1);
	ck_assert(has_error(&errs, "s/SKILL.md:1:1: the front matter has no closing"));
	errlist_free(&errs);
	ck_assert_int_eq(parse("", NULL, &md, &errs), -1);
	errlist_free(&errs);
	ck_assert_int_eq(parse("---", NULL, &md, &errs), -1);
	errlist_free(&errs);
}
END_TEST

START_TEST(skillmd_errors_at_file_lines)
{
	struct skillmd md;
	struct errlist errs;
	/* name on line 3 of the file, description missing */
	ck_assert_int_eq(parse("---\n# comment\nname: Bad--Name\n---\n", NULL, &md, &errs), -1);
	ck_assert(has_error(&errs, "s/SKILL.md:3:7: name \"Bad--Name\" must be"));
	ck_assert(has_error(&errs, "the front matter has no \"description\""));
	errlist_free(&errs);
	/* a YAML syntax error is placed at its line too */
	ck_assert_int_eq(parse("---\nname: a\ndescription: [unclosed\n---\n", NULL, &md, &errs), -1);
	ck_assert(has_error(&errs, "s/SKILL.md:"));
	errlist_free(&errs);
	/* types: a number is no name; the front matter must be a mapping */
	ck_assert_int_eq(parse("---\nname: 123\ndescription: d\n---\n", NULL, &md, &errs), -1);
	ck_assert(has_error(&errs, "s/SKILL.md:2:7: \"name\" must be a string"));
	errlist_free(&errs);
	ck_assert_int_eq(parse("---\n- a\n- b\n---\n", NULL, &md, &errs), -1);
	ck_assert(has_error(&errs, "s/SKILL.md:2:1: the front matter must be a mapping"));
	errlist_free(&errs);
	ck_assert_int_eq(parse("---\n---\n", NULL, &md, &errs), -1);
	ck_assert(has_error(&errs, "has no \"name\""));
	errlist_free(&errs);
	ck_assert_int_eq(parse("---\nname: a\ndescription: \"\"\nmetadata: [x]\nlicense: {a: b}\n---\n",
	    NULL, &md, &errs), -1);
	ck_assert(has_error(&errs, "s/SKILL.md:3:14: description must be 1 to 1024 characters"));
	ck_assert(has_error(&errs, "s/SKILL.md:4:11: metadata must be a mapping"));
	ck_assert(has_error(&errs, "s/SKILL.md:5:10: \"license\" must be a string"));
	errlist_free(&errs);
	ck_assert_int_eq(parse("---\nname: a\ndescription: b\nmetadata: {k: [1]}\n---\n", NULL, &md, &errs), -1);
	ck_assert(has_error(&errs, "metadata.k must be a string"));
	errlist_free(&errs);
}
END_TEST

START_TEST(skillmd_name_must_match_directory)
{
	struct skillmd md;
	struct errlist errs;
	ck_assert_int_eq(parse("---\nname: other\ndescription: d\n---\n", "mine", &md, &errs), -1);
	ck_assert(has_error(&errs, "s/SKILL.md:2:7: name \"other\" must be the name of the skill's directory, \"mine\""));
	errlist_free(&errs);
}
END_TEST

START_TEST(skillmd_bounds)
{
	struct skillmd md;
	struct errlist errs;
	/* description: 1024 characters pass (multi-byte ones counted once), 1025 do not */
	char *t = malloc(4 * 1100 + 64);
	strcpy(t, "---\nname: a\ndescription: ");
	for (int i = 0; i < 1024; i++)
		strcat(t, "\xc3\xa9");
	strcat(t, "\n---\n");
	ck_assert_int_eq(parse(t, NULL, &md, &errs), 0);
	cJSON_Delete(md.frontmatter);
	errlist_free(&errs);
	strcpy(strstr(t, "\n---\n"), "x\n---\n");
	ck_assert_int_eq(parse(t, NULL, &md, &errs), -1);
	errlist_free(&errs);
	free(t);
	/* front matter over its limit */
	size_t big = SKILLMD_MAX_FRONTMATTER + 100;
	t = malloc(big + 64);
	strcpy(t, "---\nname: a\ndescription: b\n#");
	size_t n = strlen(t);
	memset(t + n, 'x', big);
	strcpy(t + n + big, "\n---\n");
	ck_assert_int_eq(parse(t, NULL, &md, &errs), -1);
	ck_assert(has_error(&errs, "larger than"));
	errlist_free(&errs);
	free(t);
}
END_TEST

START_TEST(skillmd_names)
{
	ck_assert(skill_name_valid("pdf-processing"));
	ck_assert(skill_name_valid("a"));
	ck_assert(skill_name_valid("a1-b2"));
	ck_assert(!skill_name_valid(""));
	ck_assert(!skill_name_valid("-a"));
	ck_assert(!skill_name_valid("a-"));
	ck_assert(!skill_name_valid("a--b"));
	ck_assert(!skill_name_valid("A"));
	ck_assert(!skill_name_valid("a_b"));
	ck_assert(!skill_name_valid("a.b"));
	char n65[66];
	memset(n65, 'a', 65);
	n65[65] = '\0';
	ck_assert(!skill_name_valid(n65));
	n65[64] = '\0';
	ck_assert(skill_name_valid(n65));
}
END_TEST

Suite *
skillmd_suite(void)
{
	Suite *s = suite_create("skillmd");
	TCase *tc = tcase_create("frontmatter");
	tcase_add_test(tc, skillmd_reads_front_matter);
	tcase_add_test(tc, skillmd_bom_crlf_and_closing_blanks);
	tcase_add_test(tc, skillmd_missing_fences);
	tcase_add_test(tc, skillmd_errors_at_file_lines);
	tcase_add_test(tc, skillmd_name_must_match_directory);
	tcase_add_test(tc, skillmd_bounds);
	tcase_add_test(tc, skillmd_names);
	suite_add_tcase(s, tc);
	return s;
}
