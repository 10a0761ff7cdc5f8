/* A line typed at the terminal, or read from a pipe: what mcpd -p and
 * mcpd init ask. */
#ifndef MCPD_TTYLINE_H
#define MCPD_TTYLINE_H

#include <stddef.h>
#include <stdio.h>

/* One line of stdin into buf, without its line end. The prompt goes to
 * out (when stdin is a terminal, or always with echo set); with echo 0
 * and stdin a terminal, what is typed is not shown. Returns the length,
 * -1 at the end of input, -2 for a line longer than buf (the rest of it
 * is read and dropped). */
long tty_read_line(FILE *out, const char *prompt, char *buf, size_t len, int echo);

#endif
