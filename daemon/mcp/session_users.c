/* A principal's sessions, for operators (/admin/sessions): listed from
 * the user's index in storage, each checked against its record, and
 * revoked on request. The index holds the sessions' keyed hashes, not
 * their ids (whoever reads the storage would have them): sessions are
 * listed by hash ("key", as in their storage keys) and revoked by it. */
#include "session_internal.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>

struct user_op {
	struct sessions *t;
	char *user;
	int revoke;
	size_t left;
	cJSON *list;
	user_sessions_cb cb;
	void *arg;
};

static void
user_op_free(struct user_op *u)
{
	cJSON_Delete(u->list);
	free(u->user);
	free(u);
}

static void
user_op_done(struct user_op *u)
{
	u->cb(u->arg, MCPD_OK, u->list);
	user_op_free(u);
}

/* The operator hears back once every revoked record is gone. */
static void
user_session_revoked(void *arg, int ok)
{
	struct user_op *u = arg;
	(void)ok;
	if (--u->left == 0)
		user_op_done(u);
}

/* A revocation names the session as the message will: by hash. */
struct user_found {
	struct user_op *u;
	char hid[IDHASH_LEN + 1];
};

static void
user_session_found(void *arg, int status, const cJSON *r)
{
	struct user_found *f = arg;
	struct user_op *u = f->u;
	const cJSON *o = cJSON_GetObjectItemCaseSensitive(r, "o");
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(r, "p");
	const cJSON *info = cJSON_GetObjectItemCaseSensitive(r, "i");
	(void)status;
	if (cJSON_IsString(o) && strcmp(o->valuestring, u->user) == 0) {
		cJSON *e = cJSON_CreateObject();
		cJSON_AddStringToObject(e, "key", f->hid);
		if (cJSON_IsNumber(p) && p->valueint >= 0 && p->valueint < PROTO_COUNT)
			cJSON_AddStringToObject(e, "protocol", proto_names[p->valueint]);
		if (cJSON_IsObject(info))
			cJSON_AddItemToObject(e, "client", cJSON_Duplicate(info, 1));
		cJSON_AddItemToArray(u->list, e);
		if (u->revoke) {
			log_notice("session %.8s… (hash) of %s revoked by an operator", f->hid, u->user);
			u->left++;
			session_delete_hashed(u->t, f->hid, u->user, user_session_revoked, u);
		}
	}
	free(f);
	if (--u->left == 0)
		user_op_done(u);
}

static void
user_members(void *arg, int status, const char *const *members, size_t n, const char *err)
{
	struct user_op *u = arg;
	(void)err;
	if (status != MCPD_OK && status != MCPD_NOT_FOUND) {
		u->cb(u->arg, MCPD_ERROR, NULL);
		user_op_free(u);
		return;
	}
	if (n == 0 || status == MCPD_NOT_FOUND) {
		user_op_done(u);
		return;
	}
	/* Lookups may answer at once (lmdb): count them all in first. */
	u->left = n + 1;
	for (size_t i = 0; i < n; i++) {
		struct user_found *f = calloc(1, sizeof(*f));
		if (f == NULL || strlen(members[i]) != IDHASH_LEN) {
			free(f);
			u->left--;
			continue;
		}
		f->u = u;
		memcpy(f->hid, members[i], IDHASH_LEN + 1);
		session_record_hashed(u->t, members[i], user_session_found, f);
	}
	if (--u->left == 0)
		user_op_done(u);
}

void
sessions_of_user(struct sessions *t, const char *user, int revoke, user_sessions_cb cb, void *arg)
{
	struct user_op *u = calloc(1, sizeof(*u));
	if (u == NULL || (u->user = strdup(user)) == NULL || (u->list = cJSON_CreateArray()) == NULL ||
	    t->b.storage->index_members == NULL) {
		if (u != NULL)
			user_op_free(u);
		cb(arg, MCPD_ERROR, NULL);
		return;
	}
	u->t = t;
	u->revoke = revoke;
	u->cb = cb;
	u->arg = arg;
	char ik[INDEX_KEY_MAX];
	user_index_key(user, ik, sizeof(ik));
	t->b.storage->index_members(t->b.storage_inst, ik, user_members, u);
}
