/*
** sqlitebck.h -- the C core of sqlitebck: symbol binding, the connection
** handle accessor and the backup loop.
**
** No <sqlite3.h> is included and no SQLite library is linked. The few
** SQLite types used here are opaque handles from SQLite's stable ABI; the
** functions are looked up at run time in the library that Python's own
** sqlite3 module has already loaded (see sqlitebck_bind()), so the process
** never holds a second copy of SQLite.
**
** The block between the "cdef" markers is also read by build_sqlitebck.py
** and handed to cffi as the declarations Python may use: keep it free of
** preprocessor directives.
*/
#ifndef SQLITEBCK_H
#define SQLITEBCK_H

#include <stddef.h>
#include <stdint.h>

/* cdef begin */
typedef struct sqlite3 sqlite3;
typedef struct sqlite3_backup sqlite3_backup;
typedef struct sqlite3_stmt sqlite3_stmt;

/*
** One copy from a source schema to a destination schema. The caller zeroes
** it, fills it with sqlitebck_open(), drives it with sqlitebck_step() and
** always ends it with sqlitebck_close(). Python reads the counters.
*/
typedef struct sqlitebck_job {
  sqlite3 *src;           /* source connection */
  sqlite3 *dst;           /* destination connection */
  sqlite3_backup *backup; /* the SQLite backup, 0 once finished */
  sqlite3_stmt *pin;      /* statement holding the source snapshot, or 0 */
  sqlite3_stmt *hold;     /* statement keeping dst from being freed, or 0 */
  char *src_schema;       /* copy of the source schema name */
  char schema_buf[32];    /* where src_schema points when it is short */
  int pin_at_step;        /* pin the source before this step; -1: never */
  int src_busy_ms;        /* saved busy timeout of src; -1: untouched */
  int dst_busy_ms;        /* saved busy timeout of dst; -1: untouched */
  int pagecount;          /* pages in the source, as of the last step */
  int remaining;          /* pages still to copy, as of the last step */
  int steps;              /* sqlite3_backup_step() calls that copied */
  int restarts;           /* times SQLite restarted the copy */
  int batch_left;         /* pages of the current batch not yet copied */
  sqlite3 *errdb;         /* connection whose message explains the error */
  const char *fault;      /* our own message for a refused copy, or 0 */
} sqlitebck_job;

int sqlitebck_bind(const char *library, char *err, int nerr);
const char *sqlitebck_libversion(void);
void sqlitebck_set_handle_offset(size_t offset);
sqlite3 *sqlitebck_handle(uintptr_t connection);
int sqlitebck_total_changes(uintptr_t connection);
int sqlitebck_get_autocommit(uintptr_t connection);
int sqlitebck_open(sqlitebck_job *job, uintptr_t src, const char *src_schema,
                   uintptr_t dst, const char *dst_schema, int pages);
int sqlitebck_copy(sqlitebck_job *job, uintptr_t src, const char *src_schema,
                   uintptr_t dst, const char *dst_schema, int pages,
                   int budget_ms);
int sqlitebck_hold(sqlitebck_job *job);
int sqlitebck_step(sqlitebck_job *job, int pages, int budget_ms);
int sqlitebck_close(sqlitebck_job *job);
const char *sqlitebck_errmsg(const sqlitebck_job *job, int rc);
/* cdef end */

#endif /* SQLITEBCK_H */
