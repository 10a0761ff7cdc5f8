/* Paths and version fixed at build time (see the Makefile: PREFIX etc.). */
#ifndef MCPD_PATHS_H
#define MCPD_PATHS_H

extern const char mcpd_version[];
extern const char mcpd_default_config[];
extern const char mcpd_default_plugin_dir[];
extern const char mcpd_libexec_dir[];
extern const char mcpd_state_dir[];

#define PACKAGE_VERSION mcpd_version

#endif
