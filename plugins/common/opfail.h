/*
 * Failing a pending storage operation whatever the shape of its completion
 * callback (plugin.h: done, value, int, members, entries). A backend keeps
 * an operation's callback as a pointer while it waits for the server and
 * fails it from one place (the connection lost, the server's error); each
 * backend maps its own kinds of operation to these shapes. Built into the
 * storage plugins (redis, postgres, dynamodb).
 */
#ifndef MCPD_COMMON_OPFAIL_H
#define MCPD_COMMON_OPFAIL_H

enum op_shape {
	OP_DONE,                    /* mcpd_done_cb */
	OP_VALUE,                   /* mcpd_value_cb */
	OP_INT,                     /* mcpd_int_cb */
	OP_MEMBERS,                 /* mcpd_members_cb */
	OP_ENTRIES,                 /* mcpd_entries_cb */
	OP_NO_CALLBACK,             /* the backend's own work: nobody waits */
};

/* Calls cb, a callback of that shape (or NULL), with MCPD_ERROR and why. */
void op_fail(enum op_shape shape, void *cb, void *arg, const char *why);

#endif
