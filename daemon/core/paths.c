#include "paths.h"

/* The Makefile passes these; paths.o alone is rebuilt when PREFIX changes. */
const char mcpd_version[] = MCPD_VERSION;
const char mcpd_default_config[] = MCPD_SYSCONFDIR "/mcpd/mcpd.yaml";
const char mcpd_default_plugin_dir[] = MCPD_LIBDIR "/mcpd/plugins";
const char mcpd_libexec_dir[] = MCPD_LIBEXECDIR "/mcpd";
const char mcpd_state_dir[] = MCPD_LOCALSTATEDIR "/lib/mcpd";
