/*
** library.h -- what backup.c needs of library.c: the function table of a
** bound SQLite library, the header reader, the process id and the
** process-wide lock.
** Internal to the C core (Python sees sqlitebck.h).
*/
#ifndef SQLITEBCK_LIBRARY_H
#define SQLITEBCK_LIBRARY_H

#include "sqlitebck.h"

typedef struct sqlite3_backup sqlite3_backup;
typedef struct sqlite3_stmt sqlite3_stmt;
typedef struct sqlite3_mutex sqlite3_mutex;

/*
** The SQLite functions this file calls, from one SQLite library, resolved
** by sqlitebck_bind(). txn_state is optional (SQLite 3.34.0 and later);
** everything else has been in SQLite since 3.7.15. vfs_find and
** vfs_register are optional too: only the VFS shims of vfs.c need them.
*/
struct sqlitebck_api {
  const char *(*libversion)(void);
  sqlite3_backup *(*backup_init)(sqlite3 *, const char *, sqlite3 *,
                                 const char *);
  int (*backup_step)(sqlite3_backup *, int);
  int (*backup_finish)(sqlite3_backup *);
  int (*backup_remaining)(sqlite3_backup *);
  int (*backup_pagecount)(sqlite3_backup *);
  int (*busy_timeout)(sqlite3 *, int);
  void *(*commit_hook)(sqlite3 *, int (*)(void *), void *);
  sqlite3_mutex *(*db_mutex)(sqlite3 *);
  void *(*rollback_hook)(sqlite3 *, void (*)(void *), void *);
  const char *(*db_filename)(sqlite3 *, const char *);
  const char *(*errmsg)(sqlite3 *);
  const char *(*errstr)(int);
  int (*exec)(sqlite3 *, const char *, int (*)(void *, int, char **, char **),
              void *, char **);
  int (*extended_errcode)(sqlite3 *);
  int (*file_control)(sqlite3 *, const char *, int, void *);
  int (*limit)(sqlite3 *, int, int);
  int (*finalize)(sqlite3_stmt *);
  void (*free)(void *);
  int (*get_autocommit)(sqlite3 *);
  char *(*mprintf)(const char *, ...);
  void (*mutex_enter)(sqlite3_mutex *);
  void (*mutex_leave)(sqlite3_mutex *);
  sqlite3_stmt *(*next_stmt)(sqlite3 *, sqlite3_stmt *);
  int (*prepare_v2)(sqlite3 *, const char *, int, sqlite3_stmt **,
                    const char **);
  int (*step)(sqlite3_stmt *);
  int (*stmt_busy)(sqlite3_stmt *);
  int (*total_changes)(sqlite3 *);
  int (*txn_state)(sqlite3 *, const char *);
  sqlitebck_vfs_find vfs_find;
  sqlitebck_vfs_register vfs_register;
};

const struct sqlitebck_api *sqlitebck_api_of(int library);
int sqlitebck_read_file(const struct sqlitebck_api *api, sqlite3 *db,
                        const char *schema, unsigned char *buf, int n);
long sqlitebck_process(void);
void sqlitebck_list_lock(void);
void sqlitebck_list_unlock(void);

#endif /* SQLITEBCK_LIBRARY_H */
