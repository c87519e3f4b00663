/*
** registry.h -- the process-wide registry of the connections that jobs use
** (registry.c). Internal to the C core.
*/
#ifndef SQLITEBCK_REGISTRY_H
#define SQLITEBCK_REGISTRY_H

#include "library.h"

int sqlitebck_registry_add(sqlite3 *src, sqlite3 *dst, const char **conflict);
int sqlitebck_registry_take_busy(const struct sqlitebck_api *api, sqlite3 *db);
void sqlitebck_registry_remove(const struct sqlitebck_api *api, sqlite3 *src,
                               sqlite3 *dst);

#endif /* SQLITEBCK_REGISTRY_H */
