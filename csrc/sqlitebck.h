/*
** sqlitebck.h -- the C core of sqlitebck, as Python sees it: symbol
** binding and the connection handle accessor (library.c), the backup job
** (backup.c), and the VFS shims for the files the library opens itself
** (vfs.c).
**
** No <sqlite3.h> is included and no SQLite library is linked. The few
** SQLite types used here are opaque handles from SQLite's stable ABI; the
** functions are looked up at run time in the libraries that Python modules
** (sqlite3, pysqlite3, ...) have already loaded, one table per library (see
** sqlitebck_bind()), so that this extension never brings another copy of
** SQLite into the process.
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

/*
** The SQLite result codes that the C core and the Python package use:
** SQLite's own values (stable ABI), declared once here for both (cffi hands
** Python their values as lib.SQLITE_...).
*/
enum sqlitebck_sqlite_result {
  SQLITE_OK = 0,
  SQLITE_ERROR = 1,
  SQLITE_BUSY = 5,
  SQLITE_LOCKED = 6,
  SQLITE_NOMEM = 7,
  SQLITE_READONLY = 8,
  SQLITE_NOTFOUND = 12,
  SQLITE_CANTOPEN = 14,
  SQLITE_MISUSE = 21,
  SQLITE_NOTADB = 26,
  SQLITE_ROW = 100,
  SQLITE_DONE = 101,
  SQLITE_IOERR_SHORT_READ = 522,   /* SQLITE_IOERR | (2 << 8) */
  SQLITE_READONLY_ROLLBACK = 776,  /* SQLITE_READONLY | (3 << 8) */
  SQLITE_READONLY_DIRECTORY = 1544 /* SQLITE_READONLY | (6 << 8) */
};

/*
** One copy from a source schema to a destination schema. Its fields are
** private to backup.c; the caller only holds a pointer, from
** sqlitebck_job_new() to sqlitebck_job_free().
*/
typedef struct sqlitebck_job sqlitebck_job;

/*
** What a job has done so far: written by backup.c, read by the caller. The
** first four fields are a finished copy's result, in this order (the
** caller reads them at once).
*/
typedef struct sqlitebck_counts {
  int pagecount;  /* pages in the source, as of the last step */
  int steps;      /* sqlite3_backup_step() calls that copied */
  int restarts;   /* times SQLite restarted the copy */
  double elapsed; /* seconds from the start of the job to its end */
  int remaining;  /* pages still to copy, as of the last step */
  int in_batch;   /* 1 while a batch is unfinished (its time budget ran out,
                     or a lock stopped it) */
  int open;       /* 1 from sqlitebck_start() until the job ends */
  int committed;  /* 1 once the step that completed the copy committed it:
                     the destination holds the new copy */
} sqlitebck_counts;

/* How the caller should report the error of a job (sqlitebck_fault()). */
enum sqlitebck_fault_kind {
  SQLITEBCK_FAULT_NONE = 0,  /* an error to report by its result code */
  SQLITEBCK_FAULT_VALUE = 2, /* the arguments can never work (same file) */
  SQLITEBCK_FAULT_USAGE = 3  /* a connection was misused during the copy */
};

int sqlitebck_bind(const char *library, int *index, char *err, int nerr);
const char *sqlitebck_libversion(int library);
void sqlitebck_set_handle_offset(size_t offset);
sqlite3 *sqlitebck_handle(uintptr_t connection);
int sqlitebck_total_changes(int library, uintptr_t connection);
int sqlitebck_get_autocommit(int library, uintptr_t connection);

int sqlitebck_read_header(int library, uintptr_t connection, const char *schema,
                          unsigned char *buf, int n);
const char *sqlitebck_filename(int library, uintptr_t connection,
                               const char *schema);
sqlitebck_job *sqlitebck_job_new(void);
void sqlitebck_job_free(sqlitebck_job *job);
const sqlitebck_counts *sqlitebck_job_counts(const sqlitebck_job *job);
int sqlitebck_start(sqlitebck_job *job, int library, uintptr_t src,
                    const char *src_schema, uintptr_t dst,
                    const char *dst_schema, int pages);
int sqlitebck_step(sqlitebck_job *job, int pages, int budget_ms);
void sqlitebck_new_batch(sqlitebck_job *job);
int sqlitebck_copy(sqlitebck_job *job, int library, uintptr_t src,
                   const char *src_schema, uintptr_t dst,
                   const char *dst_schema, int pages, int budget_ms);
int sqlitebck_end(sqlitebck_job *job);
const char *sqlitebck_errmsg(const sqlitebck_job *job);
int sqlitebck_fault(const sqlitebck_job *job);

/* The VFS shims of vfs.c, for the files the library opens itself. */
enum sqlitebck_vfs_kind {
  SQLITEBCK_VFS_WRITER = 0, /* a private new file, written sequentially */
  SQLITEBCK_VFS_READER = 1  /* a source file, read sequentially */
};
const char *sqlitebck_vfs_name(int kind);
/* cdef end */

/*
** What vfs.c needs of the bound library, passed by sqlitebck_bind():
** sqlite3_vfs_find() and sqlite3_vfs_register(), whose sqlite3_vfs objects
** are opaque outside vfs.c.
*/
#include "sqlite_abi.h"

typedef void *(*sqlitebck_vfs_find)(const char *);
typedef int (*sqlitebck_vfs_register)(void *, int);
int sqlitebck_vfs_install(sqlitebck_vfs_find find,
                          sqlitebck_vfs_register register_vfs);
#define SQLITEBCK_VFS_WRITER_NAME "sqlitebck-writer"
#define SQLITEBCK_VFS_READER_NAME "sqlitebck-reader"

#endif /* SQLITEBCK_H */
