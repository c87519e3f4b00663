/*
** backup.c -- the C core of sqlitebck.
**
** Three parts:
**
**   1. Symbol binding. The sqlite3_* functions are looked up at run time in
**      the SQLite library that Python's sqlite3 module already loaded, so
**      that this extension never brings a second SQLite into the process.
**
**   2. The connection handle accessor, for CPython, whose connection object
**      keeps its "sqlite3 *" right after the object header.
**
**   3. The backup loop: a job wraps one sqlite3_backup and copies in steps
**      whose length is bounded in time, so that the caller regains control
**      (signals, other threads, progress reports) several times a second
**      however large the database is. When asked to, the job holds one read
**      snapshot of the source for the whole copy, so that a busy source
**      cannot make SQLite restart the copy over and over.
**
** Every function returns an SQLite result code unless its comment says
** otherwise.
*/
#ifndef _GNU_SOURCE
/* A feature-test macro, for RTLD_NOLOAD on Linux. */
#define _GNU_SOURCE /* NOLINT(bugprone-reserved-identifier) */
#endif

#include "sqlitebck.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _WIN32
#include <windows.h>
#else
#include <dlfcn.h>
#include <sys/stat.h>
#include <time.h>
#endif

/* The SQLite result codes and constants used here (stable ABI). */
#define SQLITE_OK 0
#define SQLITE_ERROR 1
#define SQLITE_BUSY 5
#define SQLITE_NOMEM 7
#define SQLITE_MISUSE 21
#define SQLITE_ROW 100
#define SQLITE_DONE 101
#define SQLITE_TXN_WRITE 2

/*
** Pages copied by one sqlite3_backup_step() call. Large enough that the
** per-step overhead does not show, small enough that a step on a slow disk
** stays well inside the time budget of sqlitebck_step().
*/
#define SQLITEBCK_CHUNK_PAGES 256

/*
** An online copy (batches, no snapshot held) of a source that other
** connections keep changing is restarted by SQLite after every change and
** may never finish. After this many restarts the job holds a snapshot until
** the end: the copy then always finishes, at the price of making writers of
** a rollback-journal source wait for the rest of the copy. Three tolerates
** the odd write to a quiet database without blocking anyone, and stops a
** busy one from wasting more than three partial copies. (The snapshot taken
** then may be newer than the last step, which costs one more restart: at
** most four in all.)
*/
#define SQLITEBCK_RESTARTS_BEFORE_PIN 3

/* Values of sqlitebck_job.pin_at_step besides a step number. */
#define SQLITEBCK_PIN_NEVER (-1)
#define SQLITEBCK_PIN_IF_WAL (-2)

/*
** The SQLite functions this file calls, resolved by sqlitebck_bind().
** txn_state is optional (SQLite 3.34.0 and later); everything else has been
** in SQLite since 3.7.15.
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
  const char *(*db_filename)(sqlite3 *, const char *);
  const char *(*errmsg)(sqlite3 *);
  const char *(*errstr)(int);
  int (*exec)(sqlite3 *, const char *, int (*)(void *, int, char **, char **),
              void *, char **);
  int (*extended_errcode)(sqlite3 *);
  int (*finalize)(sqlite3_stmt *);
  void (*free)(void *);
  int (*get_autocommit)(sqlite3 *);
  char *(*mprintf)(const char *, ...);
  int (*prepare_v2)(sqlite3 *, const char *, int, sqlite3_stmt **,
                    const char **);
  int (*step)(sqlite3_stmt *);
  int (*total_changes)(sqlite3 *);
  int (*txn_state)(sqlite3 *, const char *);
};

static struct sqlitebck_api sqlitebck_sqlite;

/* One entry of the binding table: a symbol name and where it goes. */
struct sqlitebck_symbol {
  const char *name;
  size_t offset; /* of the function pointer in struct sqlitebck_api */
  int required;
};

static const struct sqlitebck_symbol sqlitebck_symbols[] = {
    {"sqlite3_libversion", offsetof(struct sqlitebck_api, libversion), 1},
    {"sqlite3_backup_init", offsetof(struct sqlitebck_api, backup_init), 1},
    {"sqlite3_backup_step", offsetof(struct sqlitebck_api, backup_step), 1},
    {"sqlite3_backup_finish", offsetof(struct sqlitebck_api, backup_finish), 1},
    {"sqlite3_backup_remaining",
     offsetof(struct sqlitebck_api, backup_remaining), 1},
    {"sqlite3_backup_pagecount",
     offsetof(struct sqlitebck_api, backup_pagecount), 1},
    {"sqlite3_busy_timeout", offsetof(struct sqlitebck_api, busy_timeout), 1},
    {"sqlite3_db_filename", offsetof(struct sqlitebck_api, db_filename), 1},
    {"sqlite3_errmsg", offsetof(struct sqlitebck_api, errmsg), 1},
    {"sqlite3_errstr", offsetof(struct sqlitebck_api, errstr), 1},
    {"sqlite3_exec", offsetof(struct sqlitebck_api, exec), 1},
    {"sqlite3_extended_errcode",
     offsetof(struct sqlitebck_api, extended_errcode), 1},
    {"sqlite3_finalize", offsetof(struct sqlitebck_api, finalize), 1},
    {"sqlite3_free", offsetof(struct sqlitebck_api, free), 1},
    {"sqlite3_get_autocommit", offsetof(struct sqlitebck_api, get_autocommit),
     1},
    {"sqlite3_mprintf", offsetof(struct sqlitebck_api, mprintf), 1},
    {"sqlite3_prepare_v2", offsetof(struct sqlitebck_api, prepare_v2), 1},
    {"sqlite3_step", offsetof(struct sqlitebck_api, step), 1},
    {"sqlite3_total_changes", offsetof(struct sqlitebck_api, total_changes), 1},
    {"sqlite3_txn_state", offsetof(struct sqlitebck_api, txn_state), 0},
};

/*
** Resolve every function of struct sqlitebck_api from the SQLite library
** that is already loaded into the process through LIBRARY: a loaded module
** file, whose dependencies are searched too (Linux, macOS: dlopen with
** RTLD_NOLOAD, then dlsym), or a loaded DLL (Windows: GetModuleHandle, then
** GetProcAddress; sqlite3.dll, as _sqlite3.pyd exports nothing of SQLite);
** or the main program when LIBRARY is 0. Nothing new is ever loaded.
**
** Returns SQLITE_OK, or SQLITE_ERROR with a message in ERR (NERR bytes)
** naming what was tried; on failure the previous binding is kept. This is
** the one place that knows about the platform's dynamic loader.
*/
int sqlitebck_bind(const char *library, char *err, int nerr) {
  struct sqlitebck_api api;
  const char *what = library ? library : "the main program";
  size_t i;
#ifdef _WIN32
  HMODULE lib = GetModuleHandleA(library);
  if (lib == 0) {
    snprintf(err, (size_t)nerr, "%s is not loaded (error %lu)", what,
             (unsigned long)GetLastError());
    return SQLITE_ERROR;
  }
#else
  void *lib =
      library ? dlopen(library, RTLD_NOW | RTLD_NOLOAD) : dlopen(0, RTLD_NOW);
  if (lib == 0) {
    const char *why = dlerror();
    snprintf(err, (size_t)nerr, "%s is not loaded (%s)", what,
             why ? why : "dlopen failed");
    return SQLITE_ERROR;
  }
#endif

  memset(&api, 0, sizeof api);
  for (i = 0; i < sizeof sqlitebck_symbols / sizeof sqlitebck_symbols[0]; i++) {
    const struct sqlitebck_symbol *s = &sqlitebck_symbols[i];
#ifdef _WIN32
    FARPROC proc = GetProcAddress(lib, s->name);
    void *f;
    memcpy(&f, &proc, sizeof f);
#else
    void *f = dlsym(lib, s->name);
#endif
    if (f == 0 && s->required) {
      snprintf(err, (size_t)nerr, "%s provides no %s", what, s->name);
      return SQLITE_ERROR;
    }
    /* POSIX guarantees that a data pointer can hold a function address. */
    memcpy((char *)&api + s->offset, &f, sizeof f);
  }
  sqlitebck_sqlite = api;
  return SQLITE_OK;
}

/*
** Return sqlite3_libversion() of the bound library. Only valid after
** sqlitebck_bind() succeeded.
*/
const char *sqlitebck_libversion(void) { return sqlitebck_sqlite.libversion(); }

/*
** Where the handle of a connection is found. Python refers to a connection
** by an integer: on PyPy, the "sqlite3 *" itself (offset 0); on CPython,
** the address of the sqlite3.Connection object, whose "sqlite3 *db" sits
** right after the object header (offset: the header's size). Python sets
** the offset once at import, then checks sqlitebck_handle() against a live
** connection before using it for anything else.
*/
static size_t sqlitebck_handle_offset = 0;

/* Set the offset of the handle in a connection object (0: none). */
void sqlitebck_set_handle_offset(size_t offset) {
  sqlitebck_handle_offset = offset;
}

/*
** Return the "sqlite3 *" of CONNECTION, a reference as described above. The
** caller guarantees that it refers to a live sqlite3.Connection.
*/
sqlite3 *sqlitebck_handle(uintptr_t connection) {
  uintptr_t db;

  if (sqlitebck_handle_offset == 0) {
    return (sqlite3 *)connection;
  }
  memcpy(&db, (const char *)connection + sqlitebck_handle_offset, sizeof db);
  return (sqlite3 *)db;
}

/* sqlite3_total_changes() of CONNECTION, for checking sqlitebck_handle(). */
int sqlitebck_total_changes(uintptr_t connection) {
  return sqlitebck_sqlite.total_changes(sqlitebck_handle(connection));
}

/* sqlite3_get_autocommit() of CONNECTION, for checking sqlitebck_handle(). */
int sqlitebck_get_autocommit(uintptr_t connection) {
  return sqlitebck_sqlite.get_autocommit(sqlitebck_handle(connection));
}

/* Milliseconds on a monotonic clock. */
static long long sqlitebck_now_ms(void) {
#ifdef _WIN32
  return (long long)GetTickCount64();
#else
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
#endif
}

/*
** Return 1 if the database files named A and B are the same file (same
** name, or on POSIX the same device and inode, which sees through symbolic
** and hard links), else 0. An empty or missing name (in-memory and
** temporary databases) is never the same file as anything.
*/
static int sqlitebck_same_file(const char *a, const char *b) {
  if (a == 0 || b == 0 || a[0] == 0 || b[0] == 0) {
    return 0;
  }
  if (strcmp(a, b) == 0) {
    return 1;
  }
#ifdef _WIN32
  return 0; /* SQLite made both names absolute: equal names said it all */
#else
  {
    struct stat sa;
    struct stat sb;
    if (stat(a, &sa) != 0 || stat(b, &sb) != 0) {
      return 0;
    }
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
  }
#endif
}

/* sqlite3_exec() callback: store the first column of a row as an int. */
static int sqlitebck_int_column(void *out, int ncol, char **values,
                                char **names) {
  (void)names;
  if (ncol > 0 && values[0]) {
    *(int *)out = atoi(values[0]);
  }
  return 0;
}

/* sqlite3_exec() callback: set *out when the first column reads "wal". */
static int sqlitebck_wal_column(void *out, int ncol, char **values,
                                char **names) {
  (void)names;
  if (ncol > 0 && values[0]) {
    const char *v = values[0];
    *(int *)out = (v[0] == 'w' || v[0] == 'W') &&
                  (v[1] == 'a' || v[1] == 'A') &&
                  (v[2] == 'l' || v[2] == 'L') && v[3] == 0;
  }
  return 0;
}

/*
** Take over the busy handling of DB for the life of a job: store its busy
** timeout (milliseconds) in *SAVED and set it to zero, so that a lock held
** elsewhere returns SQLITE_BUSY at once and the caller's bounded and
** interruptible retry loop does the waiting. sqlitebck_close() restores it.
*/
static int sqlitebck_take_busy(sqlite3 *db, int *saved) {
  int ms = 0;
  int rc = sqlitebck_sqlite.exec(db, "PRAGMA busy_timeout",
                                 sqlitebck_int_column, &ms, 0);
  if (rc != SQLITE_OK) {
    return rc;
  }
  *saved = ms;
  sqlitebck_sqlite.busy_timeout(db, 0);
  return SQLITE_OK;
}

/*
** Hold a read transaction on the source schema until the job ends, by
** leaving a one-row statement on that schema stepped but unfinished. The
** source connection stays in autocommit mode, so the transactions, commits
** and rollbacks of its owner are not disturbed, and writes the owner makes
** through it reach the destination as SQLite's backup carries them.
**
** Returns SQLITE_OK; SQLITE_BUSY or SQLITE_LOCKED (extended) when a lock
** held elsewhere is in the way, to be retried; or another error, explained
** by sqlite3_errmsg() of the source.
*/
static int sqlitebck_pin(sqlitebck_job *job) {
  sqlite3_stmt *stmt = 0;
  char *sql;
  int rc;

  sql =
      sqlitebck_sqlite.mprintf("PRAGMA \"%w\".schema_version", job->src_schema);
  if (sql == 0) {
    return SQLITE_NOMEM;
  }
  rc = sqlitebck_sqlite.prepare_v2(job->src, sql, -1, &stmt, 0);
  sqlitebck_sqlite.free(sql);
  if (rc == SQLITE_OK) {
    rc = sqlitebck_sqlite.step(stmt);
    if (rc == SQLITE_ROW) {
      job->pin = stmt;
      return SQLITE_OK;
    }
    sqlitebck_sqlite.finalize(stmt);
  }
  job->errdb = job->src;
  rc = sqlitebck_sqlite.extended_errcode(job->src);
  return rc == SQLITE_OK ? SQLITE_ERROR : rc;
}

/* Release the snapshot taken by sqlitebck_pin(), if any. */
static void sqlitebck_unpin(sqlitebck_job *job) {
  if (job->pin) {
    sqlitebck_sqlite.finalize(job->pin);
    job->pin = 0;
  }
}

/*
** Take the source snapshot if the job's policy asks for one before the next
** step. For SQLITEBCK_PIN_IF_WAL the snapshot is taken first, because only a
** connection that has read the database knows its journal mode, and kept
** only for a WAL source: there a held snapshot does not block writers.
*/
static int sqlitebck_pin_if_due(sqlitebck_job *job) {
  if (job->pin) {
    return SQLITE_OK;
  }
  if (job->pin_at_step == SQLITEBCK_PIN_IF_WAL) {
    int wal = 0;
    char *sql;
    int rc = sqlitebck_pin(job);
    if (rc != SQLITE_OK) {
      return rc;
    }
    sql =
        sqlitebck_sqlite.mprintf("PRAGMA \"%w\".journal_mode", job->src_schema);
    if (sql == 0) {
      return SQLITE_NOMEM;
    }
    rc = sqlitebck_sqlite.exec(job->src, sql, sqlitebck_wal_column, &wal, 0);
    sqlitebck_sqlite.free(sql);
    if (rc != SQLITE_OK) {
      job->errdb = job->src;
      return rc;
    }
    if (wal) {
      job->pin_at_step = 0;
    } else {
      sqlitebck_unpin(job);
      job->pin_at_step = SQLITEBCK_PIN_NEVER;
    }
    return SQLITE_OK;
  }
  if (job->pin_at_step >= 0 && job->steps >= job->pin_at_step) {
    return sqlitebck_pin(job);
  }
  return SQLITE_OK;
}

/*
** Keep the destination connection from being freed while the job lives,
** however its owner closes it: with a statement prepared on it,
** sqlite3_close_v2() only marks it a zombie, freed when sqlitebck_close()
** finalizes that statement. (The source needs no such guard: SQLite defers
** closing the source of an unfinished backup by itself.) A job that ends in
** its first step does without; any longer one takes it.
*/
int sqlitebck_hold(sqlitebck_job *job) {
  int rc;

  if (job->hold) {
    return SQLITE_OK;
  }
  rc = sqlitebck_sqlite.prepare_v2(job->dst, "SELECT 1", -1, &job->hold, 0);
  if (rc != SQLITE_OK) {
    job->errdb = job->dst;
  }
  return rc;
}

/* Release job->src_schema, unless it lives in job->schema_buf. */
static void sqlitebck_free_schema(sqlitebck_job *job) {
  if (job->src_schema && job->src_schema != job->schema_buf) {
    sqlitebck_sqlite.free(job->src_schema);
  }
  job->src_schema = 0;
}

/*
** Start copying schema SRC_SCHEMA of connection SRC over schema DST_SCHEMA
** of connection DST (references as for sqlitebck_handle()). PAGES is the batch
*size the caller will step with:
** <= 0 means the whole database as one snapshot, which is then held from
** the first step for a file source (or from the second for an in-memory one,
** whose single step needs no snapshot); > 0 means an online copy that holds
** a snapshot only for a WAL source, where it blocks no writer.
**
** Refuses, before anything is written, with job->fault set:
**   SQLITE_ERROR  - DST is inside a transaction;
**   SQLITE_BUSY   - SRC has a write transaction open on SRC_SCHEMA (SQLite
**                   would answer SQLITE_BUSY to every step, for ever);
**   SQLITE_MISUSE - both schemas are the same database file.
** Other errors come from sqlite3_backup_init() ("unknown database", ...) and
** are explained by sqlite3_errmsg() of DST. On SQLITE_OK the job must be
** ended with sqlitebck_close(); on any error there is nothing to end.
*/
int sqlitebck_open(sqlitebck_job *job, uintptr_t src_connection,
                   const char *src_schema, uintptr_t dst_connection,
                   const char *dst_schema, int pages) {
  sqlite3 *src = sqlitebck_handle(src_connection);
  sqlite3 *dst = sqlitebck_handle(dst_connection);
  const char *src_file;
  size_t length;
  int rc;

  memset(job, 0, sizeof *job);
  job->src = src;
  job->dst = dst;
  job->src_busy_ms = -1;
  job->dst_busy_ms = -1;

  if (!sqlitebck_sqlite.get_autocommit(dst)) {
    job->fault = "the destination connection is inside a transaction";
    return SQLITE_ERROR;
  }
  if (sqlitebck_sqlite.txn_state &&
      sqlitebck_sqlite.txn_state(src, src_schema) == SQLITE_TXN_WRITE) {
    job->fault = "the source connection has a write transaction open; "
                 "commit or roll it back before copying";
    return SQLITE_BUSY;
  }
  src_file = sqlitebck_sqlite.db_filename(src, src_schema);
  if (sqlitebck_same_file(src_file,
                          sqlitebck_sqlite.db_filename(dst, dst_schema))) {
    job->fault = "source and destination are the same database file";
    return SQLITE_MISUSE;
  }
  length = strlen(src_schema);
  if (length < sizeof job->schema_buf) {
    job->src_schema = memcpy(job->schema_buf, src_schema, length + 1);
  } else {
    job->src_schema = sqlitebck_sqlite.mprintf("%s", src_schema);
    if (job->src_schema == 0) {
      return SQLITE_NOMEM;
    }
  }
  job->backup = sqlitebck_sqlite.backup_init(dst, dst_schema, src, src_schema);
  if (job->backup == 0) {
    sqlitebck_free_schema(job);
    job->errdb = dst;
    rc = sqlitebck_sqlite.extended_errcode(dst);
    return rc == SQLITE_OK ? SQLITE_ERROR : rc;
  }

  /* Only a database file can be locked by someone else; the busy timeout
  ** is worth taking over (and the source worth pinning before the first
  ** step) only then. */
  if (src_file && src_file[0]) {
    rc = sqlitebck_take_busy(src, &job->src_busy_ms);
    if (rc == SQLITE_OK) {
      const char *dst_file = sqlitebck_sqlite.db_filename(dst, dst_schema);
      if (dst_file && dst_file[0]) {
        rc = sqlitebck_take_busy(dst, &job->dst_busy_ms);
      }
    }
    job->pin_at_step = pages > 0 ? SQLITEBCK_PIN_IF_WAL : 0;
  } else {
    const char *dst_file = sqlitebck_sqlite.db_filename(dst, dst_schema);
    rc = SQLITE_OK;
    if (dst_file && dst_file[0]) {
      rc = sqlitebck_take_busy(dst, &job->dst_busy_ms);
    }
    job->pin_at_step = pages > 0 ? SQLITEBCK_PIN_NEVER : 1;
  }
  if (rc != SQLITE_OK) {
    sqlitebck_close(job);
    return rc;
  }
  return SQLITE_OK;
}

/*
** The body of sqlitebck_step() (see there), without its first check: that
** the source connection has no write transaction open. Should another
** thread open one meanwhile, SQLite refuses to step with SQLITE_BUSY.
*/
static int sqlitebck_run(sqlitebck_job *job, int pages, int budget_ms) {
  long long deadline = sqlitebck_now_ms() + budget_ms;

  if (job->batch_left <= 0) {
    job->batch_left = pages > 0 ? pages : INT_MAX;
  }
  /* A request for everything that is left is a request for one snapshot. */
  if (pages <= 0 && job->pin_at_step < 0) {
    job->pin_at_step = job->steps;
  }
  for (;;) {
    int n = job->batch_left < SQLITEBCK_CHUNK_PAGES ? job->batch_left
                                                    : SQLITEBCK_CHUNK_PAGES;
    int copied = job->pagecount - job->remaining;
    int rc = sqlitebck_pin_if_due(job);

    if (rc == SQLITE_OK && job->steps > 0) {
      rc = sqlitebck_hold(job);
    }
    if (rc != SQLITE_OK) {
      return rc;
    }
    rc = sqlitebck_sqlite.backup_step(job->backup, n);
    job->remaining = sqlitebck_sqlite.backup_remaining(job->backup);
    job->pagecount = sqlitebck_sqlite.backup_pagecount(job->backup);
    if (rc != SQLITE_OK && rc != SQLITE_DONE) {
      return rc;
    }
    job->steps++;
    /* Without a restart, a step that did not finish moves on by exactly n
    ** pages; after one, SQLite started again from page 1. */
    if (rc == SQLITE_OK && copied > 0 &&
        job->pagecount - job->remaining != copied + n) {
      job->restarts++;
      if (job->pin_at_step == SQLITEBCK_PIN_NEVER &&
          job->restarts >= SQLITEBCK_RESTARTS_BEFORE_PIN) {
        job->pin_at_step = job->steps;
      }
    }
    job->batch_left -= n;
    if (rc == SQLITE_DONE) {
      job->batch_left = 0;
      return SQLITE_DONE;
    }
    if (job->batch_left == 0 || sqlitebck_now_ms() >= deadline) {
      return SQLITE_OK;
    }
  }
}

/*
** Copy one batch of PAGES pages (PAGES <= 0: everything that is left), in
** steps of at most SQLITEBCK_CHUNK_PAGES, returning early once BUDGET_MS
** milliseconds have passed. While job->batch_left is not 0, a call goes on
** with the batch a previous call left unfinished; the caller sets it to 0 to
** start a new one.
**
** Returns SQLITE_DONE when the copy is complete and committed; SQLITE_OK
** when more is to be copied; SQLITE_BUSY or SQLITE_LOCKED (possibly
** extended) when a lock held elsewhere stopped it, or when the source
** connection has a write transaction open (job->fault then says so), to be
** retried; or another error, which ends the copy.
*/
int sqlitebck_step(sqlitebck_job *job, int pages, int budget_ms) {
  job->fault = 0;
  job->errdb = 0;
  if (sqlitebck_sqlite.txn_state &&
      sqlitebck_sqlite.txn_state(job->src, job->src_schema) ==
          SQLITE_TXN_WRITE) {
    job->fault = "the source connection has a write transaction open; the "
                 "copy goes on once it is committed or rolled back";
    return SQLITE_BUSY;
  }
  return sqlitebck_run(job, pages, budget_ms);
}

/*
** A whole copy in one call when one step is enough, as it is for small
** databases: sqlitebck_open(), one sqlitebck_step(), and sqlitebck_close()
** if that step completed the copy. Returns:
**   SQLITE_DONE  - the copy is complete and the job already closed;
**   an error with job->backup == 0 - sqlitebck_open() (or the closing)
**                  failed, and there is nothing to end;
**   anything else - the result of the step, with the job open: the caller
**                  goes on as after sqlitebck_step(), and ends the job.
*/
int sqlitebck_copy(sqlitebck_job *job, uintptr_t src, const char *src_schema,
                   uintptr_t dst, const char *dst_schema, int pages,
                   int budget_ms) {
  int rc = sqlitebck_open(job, src, src_schema, dst, dst_schema, pages);

  if (rc != SQLITE_OK) {
    return rc;
  }
  rc = sqlitebck_run(job, pages, budget_ms);
  if (rc == SQLITE_DONE) {
    int closed = sqlitebck_close(job);
    if (closed != SQLITE_OK) {
      return closed;
    }
  }
  return rc;
}

/*
** End the job, whatever its state: sqlite3_backup_finish() (which rolls the
** destination back to its previous content if the copy is not complete),
** give both connections their busy timeouts back, then release the source
** snapshot and the destination guard. Finalizing those two statements may
** free a connection its owner closed meanwhile, so they go last. Safe to
** call twice. Returns the result of sqlite3_backup_finish(): SQLITE_OK, or
** the error that ended the copy.
*/
int sqlitebck_close(sqlitebck_job *job) {
  int rc = SQLITE_OK;

  if (job->backup) {
    rc = sqlitebck_sqlite.backup_finish(job->backup);
    job->backup = 0;
  }
  if (job->src_busy_ms >= 0) {
    sqlitebck_sqlite.busy_timeout(job->src, job->src_busy_ms);
    job->src_busy_ms = -1;
  }
  if (job->dst_busy_ms >= 0) {
    sqlitebck_sqlite.busy_timeout(job->dst, job->dst_busy_ms);
    job->dst_busy_ms = -1;
  }
  sqlitebck_free_schema(job);
  sqlitebck_unpin(job);
  if (job->hold) {
    sqlitebck_sqlite.finalize(job->hold);
    job->hold = 0;
  }
  return rc;
}

/*
** Return the message that explains result code RC of the job's last call:
** our own refusal, the message of the connection the error came from, or
** SQLite's generic text for RC (as sqlite3_backup_step() sets no message).
*/
const char *sqlitebck_errmsg(const sqlitebck_job *job, int rc) {
  if (job->fault) {
    return job->fault;
  }
  if (job->errdb) {
    return sqlitebck_sqlite.errmsg(job->errdb);
  }
  return sqlitebck_sqlite.errstr(rc);
}
