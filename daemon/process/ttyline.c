#include "ttyline.h"

#include <string.h>
#include <termios.h>
#include <unistd.h>

long
tty_read_line(FILE *out, const char *prompt, char *buf, size_t len, int echo)
{
	struct termios old, quiet;
	int tty = isatty(STDIN_FILENO);
	int hidden = !echo && tty && tcgetattr(STDIN_FILENO, &old) == 0;
	/* Echo off before the prompt: what is typed once it shows is not
	 * echoed (typed before, it is dropped by TCSAFLUSH). */
	if (hidden) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	}
	if (tty || echo) {
		fprintf(out, "%s", prompt);
		fflush(out);
	}
	char *got = fgets(buf, (int)len, stdin);
	if (hidden) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		fprintf(out, "\n");
		fflush(out);
	}
	if (got == NULL)
		return -1;
	size_t n = strlen(buf);
	if (n == len - 1 && buf[n - 1] != '\n') {
		int c;
		while ((c = getchar()) != EOF && c != '\n')
			;       /* the rest of the line is not the next answer */
		return -2;
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	return (long)n;
}
