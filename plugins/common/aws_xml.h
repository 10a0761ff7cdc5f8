/*
 * The little of XML the AWS query APIs need (STS, SNS): the text of the
 * first element of a name, entities decoded. Not a parser: answers are
 * flat and their element names unique where they are read.
 */
#ifndef MCPD_PLUGIN_AWS_XML_H
#define MCPD_PLUGIN_AWS_XML_H

#include <stddef.h>

/* The text of the first <tag>...</tag> in xml into out ("" when there is
 * none). 0, or -1 when there is none or it does not fit. */
int aws_xml_text(const char *xml, const char *tag, char *out, size_t len);
/* The same, malloc'ed, or NULL. */
char *aws_xml_dup(const char *xml, const char *tag);

#endif
