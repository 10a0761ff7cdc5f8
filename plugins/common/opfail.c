#include "opfail.h"

#include <mcpd/plugin.h>

#include <stddef.h>

void
op_fail(enum op_shape shape, void *cb, void *arg, const char *why)
{
	if (cb == NULL)
		return;
	switch (shape) {
	case OP_DONE:
		((mcpd_done_cb *)cb)(arg, MCPD_ERROR, why);
		break;
	case OP_VALUE:
		((mcpd_value_cb *)cb)(arg, MCPD_ERROR, NULL, 0, why);
		break;
	case OP_INT:
		((mcpd_int_cb *)cb)(arg, MCPD_ERROR, 0, why);
		break;
	case OP_MEMBERS:
		((mcpd_members_cb *)cb)(arg, MCPD_ERROR, NULL, 0, why);
		break;
	case OP_ENTRIES:
		((mcpd_entries_cb *)cb)(arg, MCPD_ERROR, NULL, 0, why);
		break;
	case OP_NO_CALLBACK:
		break;
	}
}
