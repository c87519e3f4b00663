/*
** backup.c -- the backup job of sqlitebck: one sqlite3_backup from start to
** end, copied in steps whose length is bounded in time, so that the caller
** regains control (signals, other threads, progress reports) several times
** a second however large the database is. The job owns everything it sets
** up on the caller's connections (a snapshot of the source, a guard on each
** connection, busy timeouts, hooks and a limit on the destination) and
** gives all of it back in sqlitebck_end(), in the one order that is safe
** even if the caller closed a connection meanwhile. It calls SQLite through
** the function table of the connections' library (library.c).
**
** Every function returns an SQLite result code unless its comment says
** otherwise.
**
** THREAD SAFETY
**
** Python may call into a job from any thread, and several jobs may run at
** once on one connection (threads sharing it with check_same_thread=False).
**
**   - A job's own fields (struct sqlitebck_job) are written only by the
**     thread inside one of its public entry points; the caller never makes
**     two calls on one job at once (the Python owner of a job is one call,
**     or a Backup object that refuses re-entrant calls).
**   - Each entry point holds both connections' SQLite mutexes, source first
**     (sqlitebck_enter()), from beginning to end: nothing else on either
**     connection runs meanwhile, in SQLite or through it.
**   - dst_disturbed is written by the destination's commit and rollback
**     hooks (set while the job is fenced, see sqlitebck_fence()), which
**     SQLite calls on the thread that runs a statement on the destination,
**     holding its mutex: from a callback during one of the job's calls, or
**     from any thread between them; it is read (volatile) under the mutexes
**     by sqlitebck_check_dst().
**   - The registry of connections in use (registry.c) and the table of
**     libraries bound (library.c) are process-wide, guarded by
**     sqlitebck_list_lock(), which is never held while SQLite runs anything.
**   - counts is written under the mutexes by the entry points, and read by
**     the caller between calls.
*/
#ifndef _POSIX_C_SOURCE
/* A feature-test macro, for clock_gettime() under -std=c99. */
#define _POSIX_C_SOURCE 200809L /* NOLINT(bugprone-reserved-identifier) */
#endif

#include "registry.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _WIN32
#include <windows.h>
#else
#include <sys/stat.h>
#include <time.h>
#endif

/* Seconds on a monotonic clock (from an arbitrary origin). */
static double sqlitebck_now(void) {
#ifdef _WIN32
  LARGE_INTEGER count;
  LARGE_INTEGER frequency;
  QueryPerformanceCounter(&count);
  QueryPerformanceFrequency(&frequency);
  return (double)count.QuadPart / (double)frequency.QuadPart;
#else
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
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

/*
** A job's errors: the result code, which kind of fault it is (see enum
** sqlitebck_fault_kind) and the message, copied at the time of the error,
** because ending the job may change what sqlite3_errmsg() says.
*/
struct sqlitebck_error {
  int rc;
  int fault;
  const char *text; /* our own message, or the copy below */
  char *copy;       /* malloc() copy of SQLite's message, or 0 */
};

/*
** SNAPSHOT RULES
**
** A job copies the source in steps. Between two steps without a snapshot,
** other connections may write to the source, and SQLite then restarts the
** copy from page 1: a busy source may never be copied at all. Holding a
** snapshot (a read transaction on the source, see sqlitebck_pin()) for the
** rest of the copy rules out restarts, but in rollback-journal mode it also
** blocks every writer of the source until the copy ends. So:
**
**   - A whole copy (pages <= 0) is one snapshot: it is held from the first
**     step (SNAPSHOT_NOW). An in-memory source, which no other process can
**     change and whose small databases are copied in one step, takes it
**     only before a second step (SNAPSHOT_SECOND_STEP).
**   - An online copy (pages > 0) of a database file takes the snapshot at
**     its first step and keeps it only if the source is in WAL mode, where
**     a reader blocks no writer (SNAPSHOT_IF_WAL). Otherwise, and for an
**     in-memory source, batches release the source between them
**     (SNAPSHOT_AFTER_RESTARTS) until SQLite has restarted the copy
**     SQLITEBCK_RESTARTS_BEFORE_PIN times; the snapshot is then held to the
**     end, and the copy finishes.
**   - A step that asks for everything that is left (pages <= 0) takes the
**     snapshot at once, whatever the job was opened with.
**
** Once taken, the snapshot is held until the job ends (SNAPSHOT_HELD).
** sqlitebck_take_snapshot() is the only function that applies these rules.
*/
enum sqlitebck_snapshot {
  SQLITEBCK_SNAPSHOT_NOW,
  SQLITEBCK_SNAPSHOT_SECOND_STEP,
  SQLITEBCK_SNAPSHOT_IF_WAL,
  SQLITEBCK_SNAPSHOT_AFTER_RESTARTS,
  SQLITEBCK_SNAPSHOT_HELD
};

/*
** Three restarts tolerate the odd write to a quiet database without
** blocking anyone, and stop a busy one from wasting more than three partial
** copies. (The snapshot taken then may be newer than the last step, which
** costs one more restart: at most four in all.)
*/
#define SQLITEBCK_RESTARTS_BEFORE_PIN 3

/*
** Pages copied by one sqlite3_backup_step() call. Large enough that the
** per-step overhead does not show, small enough that a step on a slow disk
** stays well inside the time budget of sqlitebck_step().
*/
#define SQLITEBCK_CHUNK_PAGES 256

struct sqlitebck_job {
  sqlitebck_counts counts;         /* what the caller reads; counts.open: 1 from
                                      sqlitebck_start() to sqlitebck_end() */
  const struct sqlitebck_api *api; /* the library of both connections */
  sqlite3 *src;                    /* source connection */
  sqlite3 *dst;                    /* destination connection */
  sqlite3_backup *backup;          /* the SQLite backup, 0 once finished */
  sqlite3_stmt *pin;       /* statement holding the source snapshot, or 0 */
  sqlite3_stmt *src_guard; /* statements keeping the connections from being */
  sqlite3_stmt *dst_guard; /*   freed (see sqlitebck_guard()), or 0 */
  int locked;              /* 1 while this thread holds both db mutexes */
  int dst_sql_limit;       /* dst's SQL length limit, while fenced */
  int listed;              /* 1 while both are in the registry.c list */
  int fenced;              /* 1 once dst is fenced (see sqlitebck_fence()) */
  double started;          /* sqlitebck_now() when the job started */
  char *src_schema;        /* copy of the source schema name */
  char schema_buf[32];     /* where src_schema points when it is short */
  enum sqlitebck_snapshot snapshot;
  int batch_left;             /* pages of the current batch not yet copied */
  int dst_autocommit;         /* sqlite3_get_autocommit(dst) at the start */
  int dst_changes;            /* sqlite3_total_changes(dst) at the start */
  volatile int dst_disturbed; /* commits and rollbacks of dst seen */
  long owner;                 /* the process that started the job */
  struct sqlitebck_error error;
};

/*
** Return 1 if JOB is open but was started by another process: this is a
** child of fork(), holding a copy of its parent's memory. The job, its
** connections and its files belong to the parent: the child never steps,
** ends or rolls back anything of theirs (the connections' files are the
** parent's, and a rollback from here would undo its copy); it only forgets
** the job, as if ended, touching no SQLite object.
*/
static int sqlitebck_forked(sqlitebck_job *job) {
  if (job->counts.open && job->owner != sqlitebck_process()) {
    job->counts.open = 0;
    job->backup = 0;
    job->pin = job->src_guard = job->dst_guard = 0;
    return 1;
  }
  return 0;
}

static int sqlitebck_guard(sqlitebck_job *job);

/*
** Allocate a job, zeroed: not open. Returns 0 when out of memory (not a
** result code). Free it with sqlitebck_job_free().
*/
sqlitebck_job *sqlitebck_job_new(void) {
  return (sqlitebck_job *)calloc(1, sizeof(sqlitebck_job));
}

/* Forget the job's error. */
static void sqlitebck_clear_error(sqlitebck_job *job) {
  free(job->error.copy);
  memset(&job->error, 0, sizeof job->error);
}

/*
** Return "PREFIX: TEXT", or TEXT when PREFIX is 0, copied into memory from
** malloc() (not SQLite's: a job's message outlives the job's library, as the
** job may be reused with another), or 0 when out of memory.
*/
static char *sqlitebck_message(const char *prefix, const char *text) {
  size_t n = strlen(text) + (prefix ? strlen(prefix) + 2 : 0) + 1;
  char *copy = (char *)malloc(n);
  if (copy) {
    snprintf(copy, n, "%s%s%s", prefix ? prefix : "", prefix ? ": " : "", text);
  }
  return copy;
}

/*
** End JOB if it is still open (see sqlitebck_end()), then free it. A null
** JOB is ignored. This is the destructor the caller's garbage collector
** runs, so a job that its owner dropped is still ended.
*/
void sqlitebck_job_free(sqlitebck_job *job) {
  if (job) {
    sqlitebck_end(job);
    sqlitebck_clear_error(job);
    free(job);
  }
}

/* Where the caller reads what JOB has done. */
const sqlitebck_counts *sqlitebck_job_counts(const sqlitebck_job *job) {
  return &job->counts;
}

/*
** Record an error of the job and return RC. TEXT is our own message (a
** string constant) for a fault of kind FAULT; when TEXT is 0, the message
** is that of connection DB, or when DB is 0 SQLite's text for RC.
*/
static int sqlitebck_fail(sqlitebck_job *job, int rc, int fault,
                          const char *text, sqlite3 *db) {
  sqlitebck_clear_error(job);
  job->error.rc = rc;
  job->error.fault = fault;
  if (text) {
    job->error.text = text;
  } else if (db) {
    job->error.copy = sqlitebck_message(0, job->api->errmsg(db));
    job->error.text = job->error.copy ? job->error.copy : "out of memory";
  } else {
    job->error.text = job->api->errstr(rc);
  }
  return rc;
}

/* The extended result code of DB's last error, never SQLITE_OK. */
static int sqlitebck_errcode(const sqlitebck_job *job, sqlite3 *db) {
  int rc = job->api->extended_errcode(db);
  return rc == SQLITE_OK ? SQLITE_ERROR : rc;
}

/*
** Record the error of a statement that the job ran on connection DB for
** the reason WHAT, so that its message says what was refused and why (a
** caller's authorizer or progress handler may refuse it). Returns the
** extended result code.
*/
#define SQLITEBCK_TAKE_BUSY_FAILED                                             \
  "could not read the busy timeout of a connection (PRAGMA busy_timeout), "    \
  "which the copy takes over"

static int sqlitebck_fail_on(sqlitebck_job *job, sqlite3 *db,
                             const char *what) {
  int rc = sqlitebck_errcode(job, db);
  sqlitebck_fail(job, rc, 0, "", 0);
  job->error.copy = sqlitebck_message(what, job->api->errmsg(db));
  job->error.text = job->error.copy ? job->error.copy : "out of memory";
  return rc;
}

/*
** The commit and rollback hooks of the destination for the life of a job.
** SQLite calls neither for the backup's own commit or rollback, only when
** some statement that the destination's owner ran during the copy ends the
** backup's transaction: a commit would publish a half-copied database, so
** it is turned into a rollback (which also undoes the copy so far); after a
** rollback (a failed statement, say) the backup has nothing left to write
** into. Either way the job's next step ends the copy with an error.
*/
static int sqlitebck_refuse_commit(void *arg) {
  sqlitebck_job *job = (sqlitebck_job *)arg;
  job->dst_disturbed++;
  return 1;
}

static void sqlitebck_note_rollback(void *arg) {
  sqlitebck_job *job = (sqlitebck_job *)arg;
  job->dst_disturbed++;
}

/*
** Return SQLITE_OK if the destination is as the job left it when it fenced
** it: no commit or rollback seen by the hooks above, no transaction begun,
** no row changed, no statement running other than the job's own. Otherwise
** the destination connection was used during the copy, which SQLite's
** backup does not allow: a fault.
*/
static int sqlitebck_check_dst(sqlitebck_job *job) {
  if (!job->fenced) {
    return SQLITE_OK; /* nothing of the caller's has run since the start */
  }
  if (job->dst_disturbed == 0 &&
      job->api->get_autocommit(job->dst) == job->dst_autocommit &&
      job->api->total_changes(job->dst) == job->dst_changes) {
    sqlite3_stmt *stmt = 0;
    while ((stmt = job->api->next_stmt(job->dst, stmt)) != 0) {
      if (stmt != job->dst_guard && job->api->stmt_busy(stmt)) {
        break;
      }
    }
    if (stmt == 0) {
      return SQLITE_OK;
    }
  }
  return sqlitebck_fail(
      job, SQLITE_MISUSE, SQLITEBCK_FAULT_USAGE,
      "the destination connection was used during the copy; the copy is "
      "abandoned and the destination keeps its previous content",
      0);
}

/*
** Hold a read transaction on the source schema until the job ends, by
** leaving a one-row statement on that schema stepped but unfinished. The
** source connection stays in autocommit mode, so the transactions, commits
** and rollbacks of its owner are not disturbed, and writes the owner makes
** through it reach the destination as SQLite's backup carries them. This is
** the one statement a job runs on the source connection, and the caller's
** authorizer, progress handler and trace callback see it.
**
** Returns SQLITE_OK; SQLITE_BUSY or SQLITE_LOCKED (extended) when a lock
** held elsewhere is in the way, to be retried; or another error.
*/
static int sqlitebck_pin(sqlitebck_job *job) {
  sqlite3_stmt *stmt = 0;
  char *sql;
  int rc;

  sql = job->api->mprintf("PRAGMA \"%w\".schema_version", job->src_schema);
  if (sql == 0) {
    return sqlitebck_fail(job, SQLITE_NOMEM, 0, 0, 0);
  }
  rc = job->api->prepare_v2(job->src, sql, -1, &stmt, 0);
  job->api->free(sql);
  if (rc == SQLITE_OK) {
    rc = job->api->step(stmt);
    if (rc == SQLITE_ROW) {
      job->pin = stmt;
      return SQLITE_OK;
    }
    job->api->finalize(stmt);
  }
  rc = sqlitebck_errcode(job, job->src);
  if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED) {
    return sqlitebck_fail(job, rc, 0, 0, job->src);
  }
  if (rc == SQLITE_NOTADB) {
    return sqlitebck_fail(job, rc, 0,
                          "the source file is not a database, or it is "
                          "encrypted (SQLCipher: open it with its key)",
                          0);
  }
  return sqlitebck_fail_on(job, job->src,
                           "could not take a snapshot of the source (PRAGMA "
                           "schema_version on the source connection)");
}

/*
** Return 1 if the source database file is in WAL mode, else 0: bytes 18
** and 19 of its header (the file format versions) are 2. Read through the
** file object SQLite has open, under the job's snapshot, never by a
** statement that the caller's callbacks would see.
*/
static int sqlitebck_source_is_wal(sqlitebck_job *job) {
  unsigned char header[20];
  int rc = sqlitebck_read_file(job->api, job->src, job->src_schema, header,
                               sizeof header);
  return rc == SQLITE_OK && header[18] == 2 && header[19] == 2;
}

/* Release the snapshot taken by sqlitebck_pin(), if any. */
static void sqlitebck_unpin(sqlitebck_job *job) {
  if (job->pin) {
    job->api->finalize(job->pin);
    job->pin = 0;
  }
}

/*
** Apply the SNAPSHOT RULES before a step that is to copy PAGES pages: take
** the snapshot if it is due. Returns SQLITE_OK, or the error of taking it.
*/
static int sqlitebck_take_snapshot(sqlitebck_job *job, int pages) {
  int rc;

  if (pages <= 0 && (job->snapshot == SQLITEBCK_SNAPSHOT_IF_WAL ||
                     job->snapshot == SQLITEBCK_SNAPSHOT_AFTER_RESTARTS)) {
    job->snapshot = SQLITEBCK_SNAPSHOT_NOW;
  }
  switch (job->snapshot) {
  case SQLITEBCK_SNAPSHOT_HELD:
    return SQLITE_OK;
  case SQLITEBCK_SNAPSHOT_SECOND_STEP:
    if (job->counts.steps == 0) {
      return SQLITE_OK;
    }
    break;
  case SQLITEBCK_SNAPSHOT_AFTER_RESTARTS:
    if (job->counts.restarts < SQLITEBCK_RESTARTS_BEFORE_PIN) {
      return SQLITE_OK;
    }
    break;
  case SQLITEBCK_SNAPSHOT_NOW:
  case SQLITEBCK_SNAPSHOT_IF_WAL:
    break;
  }
  rc = sqlitebck_guard(job);
  if (rc == SQLITE_OK) {
    rc = sqlitebck_pin(job);
  }
  if (rc != SQLITE_OK) {
    return rc;
  }
  if (job->snapshot == SQLITEBCK_SNAPSHOT_IF_WAL &&
      !sqlitebck_source_is_wal(job)) {
    sqlitebck_unpin(job);
    job->snapshot = SQLITEBCK_SNAPSHOT_AFTER_RESTARTS;
    return SQLITE_OK;
  }
  job->snapshot = SQLITEBCK_SNAPSHOT_HELD;
  return SQLITE_OK;
}

/* Release job->src_schema, unless it lives in job->schema_buf. */
static void sqlitebck_free_schema(sqlitebck_job *job) {
  if (job->src_schema && job->src_schema != job->schema_buf) {
    job->api->free(job->src_schema);
  }
  job->src_schema = 0;
}

/*
** THE LIFE OF A JOB, AND ITS CONNECTIONS
**
** A job uses two connections that belong to the caller, who may close
** either at any moment: from a progress callback, between steps, from
** another thread. sqlite3_close_v2() frees a connection at once unless it
** is busy: a statement is prepared on it, or it is the source of a
** sqlite3_backup. So a job keeps both allocated in two ways:
**
**   - Each public entry point (sqlitebck_start(), sqlitebck_step(),
**     sqlitebck_copy(), sqlitebck_end()) holds the mutexes of both
**     connections from beginning to end, source first as SQLite's own backup
**     does. A close from another thread waits until the call returns. (This
**     costs nothing: SQLite takes the same mutexes for every step.)
**   - Before anything runs on this thread that could call back into the
**     caller's code (a statement on either connection: the caller's
**     authorizer, progress handler and trace callback see it), and before a
**     call returns with the job open, a statement is prepared on each
**     connection and kept until the job ends (sqlitebck_guard()). A close
**     from a callback or between steps then leaves a "zombie" connection,
**     which SQLite frees once sqlitebck_release() finalizes the guards.
**
** Once the backup is started, before the caller's code can run again (the
** same two moments as the guards), the destination is fenced to the end of
** the job (sqlitebck_fence()). It refuses new statements: its SQL length
** limit is zero, so that any statement prepared on it (from a callback
** during a step, or between two calls) fails at once with SQLITE_TOOBIG
** ("statement too long") instead of running inside the backup's
** half-written transaction, and so does
** sqlite3_deserialize(), which would free the database the backup writes
** into; the limit is given back when the job ends. (A statement its owner
** had prepared before is caught by sqlitebck_check_dst() instead.)
**
** So a small copy between connections in memory, done in one call that runs
** no statement, pays for no guard and no fence. Ending a job
** (sqlitebck_end_locked()) touches the connections only while the mutexes
** are held and before the guards go; sqlitebck_release() finalizes the
** job's statements, which may free a zombie connection, after the mutexes
** are left.
*/

/*
** Fence the destination of a started backup: from here to the end of the
** job, its SQL length limit is zero, its commit and rollback hooks count
** what its owner does to its transaction, and its autocommit flag and
** change count are noted, for sqlitebck_check_dst(). Called by
** sqlitebck_guard(), before it prepares the guards (whose preparation runs
** the caller's authorizer), whenever the caller's code is about to run with
** the backup started.
*/
static void sqlitebck_fence(sqlitebck_job *job) {
  job->dst_sql_limit = job->api->limit(job->dst, SQLITE_LIMIT_SQL_LENGTH, 0);
  job->dst_autocommit = job->api->get_autocommit(job->dst);
  job->dst_changes = job->api->total_changes(job->dst);
  job->api->commit_hook(job->dst, sqlitebck_refuse_commit, job);
  job->api->rollback_hook(job->dst, sqlitebck_note_rollback, job);
  job->fenced = 1;
}

/*
** The statement that guards a connection: prepared, never run. Preparing it
** must touch nothing but the parser, on every SQLite: no schema read, no
** lock, no I/O, no VDBE program that a progress handler could interrupt.
** A SELECT does not qualify: since SQLite 3.45 or so, preparing any SELECT
** on a connection whose schema is not loaded reads the schema, which on
** the destination of a copy in progress is half-written ("malformed
** database schema"), and on a source that another process is writing is
** locked. A transaction statement compiles to a fixed program without
** looking at any schema, and has done so in every version.
*/
#define SQLITEBCK_GUARD_SQL "BEGIN"

/*
** Prepare the guard statements of both connections, unless already done,
** fencing the destination first if the backup is started. Preparing a
** statement runs the caller's authorizer, which may use the other
** connection: once the backup has begun, the destination is fenced before
** anything is prepared (the source's authorizer is then refused a
** statement on it, or a sqlite3_deserialize()), and guarded before the
** source (so that the source's authorizer cannot free it by closing it; the
** source of a backup is never freed by a close). Returns SQLITE_OK, or the
** error of preparing one (the caller's authorizer may refuse it; the
** message says what was refused).
*/
static int sqlitebck_guard(sqlitebck_job *job) {
  if (job->backup && !job->fenced) {
    sqlitebck_fence(job);
  }
  if (job->dst_guard == 0) {
    int rc;
    /* A fenced destination refuses statements: its SQL length limit is
    ** lifted for this one alone. */
    if (job->fenced) {
      job->api->limit(job->dst, SQLITE_LIMIT_SQL_LENGTH,
                      (int)sizeof SQLITEBCK_GUARD_SQL);
    }
    rc = job->api->prepare_v2(job->dst, SQLITEBCK_GUARD_SQL, -1,
                              &job->dst_guard, 0);
    if (job->fenced) {
      job->api->limit(job->dst, SQLITE_LIMIT_SQL_LENGTH, 0);
    }
    if (rc != SQLITE_OK) {
      return sqlitebck_fail_on(job, job->dst,
                               "could not prepare the statement that keeps the "
                               "destination connection open during the copy "
                               "(" SQLITEBCK_GUARD_SQL ", never run)");
    }
  }
  if (job->src_guard == 0 &&
      job->api->prepare_v2(job->src, SQLITEBCK_GUARD_SQL, -1, &job->src_guard,
                           0) != SQLITE_OK) {
    return sqlitebck_fail_on(job, job->src,
                             "could not prepare the statement that keeps the "
                             "source connection open during the copy "
                             "(" SQLITEBCK_GUARD_SQL ", never run)");
  }
  return SQLITE_OK;
}

/* Enter the mutexes of both connections (no-ops where SQLite has none). */
static void sqlitebck_enter(sqlitebck_job *job) {
  job->api->mutex_enter(job->api->db_mutex(job->src));
  job->api->mutex_enter(job->api->db_mutex(job->dst));
  job->locked = 1;
}

/*
** End an open job, the mutexes held: the destination gets its hooks back
** and both connections their busy timeouts; then sqlite3_backup_finish()
** rolls the destination back to its previous content unless the copy is
** complete. Returns the result of sqlite3_backup_finish() (the error that
** ended the copy, if any), recorded as the job's error.
*/
static int sqlitebck_end_locked(sqlitebck_job *job) {
  int rc = SQLITE_OK;

  job->counts.open = 0;
  if (job->fenced) {
    job->api->commit_hook(job->dst, 0, 0);
    job->api->rollback_hook(job->dst, 0, 0);
    job->api->limit(job->dst, SQLITE_LIMIT_SQL_LENGTH, job->dst_sql_limit);
    job->fenced = 0;
  }
  if (job->listed) {
    sqlitebck_registry_remove(job->api, job->src, job->dst);
    job->listed = 0;
  }
  if (job->backup) {
    rc = job->api->backup_finish(job->backup);
    job->backup = 0;
    if (rc != SQLITE_OK && job->error.rc == SQLITE_OK) {
      sqlitebck_fail(job, rc, 0, 0, 0);
    }
  }
  sqlitebck_free_schema(job);
  job->counts.elapsed = sqlitebck_now() - job->started;
  return rc;
}

/* Finalize the job's statements; it must be ended, its mutexes left. */
static void sqlitebck_release(sqlitebck_job *job) {
  sqlite3_stmt **stmts[3];
  int i;

  stmts[0] = &job->pin;
  stmts[1] = &job->src_guard;
  stmts[2] = &job->dst_guard;
  for (i = 0; i < 3; i++) {
    if (*stmts[i]) {
      job->api->finalize(*stmts[i]);
      *stmts[i] = 0;
    }
  }
}

/*
** What every public entry point does last: guard a job that stays open (or
** end it, if that fails), leave the mutexes, and release an ended job.
** Returns RC, or the error of guarding.
*/
static int sqlitebck_return(sqlitebck_job *job, int rc) {
  if (job->counts.open) {
    int guarded = sqlitebck_guard(job);
    if (guarded != SQLITE_OK) {
      rc = guarded;
      sqlitebck_end_locked(job);
    }
  }
  if (job->locked) {
    job->locked = 0;
    job->api->mutex_leave(job->api->db_mutex(job->dst));
    job->api->mutex_leave(job->api->db_mutex(job->src));
  }
  if (!job->counts.open) {
    sqlitebck_release(job);
  }
  return rc;
}

/*
** sqlitebck_start() without its return: the job is left open or ended, and
** locked if both connections are open.
*/
static int sqlitebck_open(sqlitebck_job *job, int library,
                          uintptr_t src_connection, const char *src_schema,
                          uintptr_t dst_connection, const char *dst_schema,
                          int pages) {
  const struct sqlitebck_api *api = sqlitebck_api_of(library);
  sqlite3 *src = sqlitebck_handle(src_connection);
  sqlite3 *dst = sqlitebck_handle(dst_connection);
  const char *src_file;
  const char *dst_file;
  const char *conflict;
  size_t length;
  int rc;

  if (job->counts.open) {
    return sqlitebck_fail(job, SQLITE_MISUSE, SQLITEBCK_FAULT_USAGE,
                          "the job is already running", 0);
  }
  sqlitebck_clear_error(job);
  memset(&job->counts, 0, sizeof job->counts);
  job->started = sqlitebck_now();
  job->batch_left = 0;
  job->dst_disturbed = 0;
  if (api == 0) {
    return sqlitebck_fail(job, SQLITE_MISUSE, SQLITEBCK_FAULT_USAGE,
                          "no SQLite library is bound under that index", 0);
  }
  job->api = api;
  if (src == 0 || dst == 0) {
    return sqlitebck_fail(job, SQLITE_MISUSE, SQLITEBCK_FAULT_USAGE,
                          "cannot operate on a closed database", 0);
  }
  job->src = src;
  job->dst = dst;
  job->owner = sqlitebck_process();
  /* A mistake whatever state the connection is in: said first. */
  if (src == dst) {
    return sqlitebck_fail(job, SQLITE_MISUSE, SQLITEBCK_FAULT_VALUE,
                          "source and dest are the same connection", 0);
  }
  /* Listed before the mutexes are taken: a job that conflicts with a
  ** running one is refused without waiting for them. Two jobs that may
  ** run at once share at most their source, so that taking the mutexes
  ** source first never waits in a cycle (copies from X to Y and from Y to X
  ** started by two threads at once would otherwise wait for each other for
  ** ever, each holding its source's mutex). */
  rc = sqlitebck_registry_add(src, dst, &conflict);
  if (rc != SQLITE_OK) {
    return sqlitebck_fail(job, rc, SQLITEBCK_FAULT_NONE, conflict, 0);
  }
  job->listed = 1;
  sqlitebck_enter(job);
  job->counts.open = 1;

  /* What sqlite3_backup_init() refuses, said more plainly: a transaction
  ** (read or write) open on the destination database. A connection whose
  ** autocommit flag is off but which has not read yet (Python 3.12's
  ** autocommit=False right after commit(), a plain BEGIN) is accepted, as
  ** by SQLite. Without txn_state, sqlite3_backup_init() checks alone. */
  if (api->txn_state && api->txn_state(dst, dst_schema) > SQLITE_TXN_NONE) {
    sqlitebck_fail(job, SQLITE_ERROR, SQLITEBCK_FAULT_NONE,
                   "destination database is in use: the destination "
                   "connection has a transaction open on it (it has read or "
                   "written); commit or roll it back before copying",
                   0);
    goto fail;
  }
  if (job->api->txn_state &&
      job->api->txn_state(src, src_schema) == SQLITE_TXN_WRITE) {
    sqlitebck_fail(job, SQLITE_BUSY, SQLITEBCK_FAULT_NONE,
                   "the source connection has a write transaction open; "
                   "commit or roll it back before copying",
                   0);
    goto fail;
  }
  src_file = job->api->db_filename(src, src_schema);
  dst_file = job->api->db_filename(dst, dst_schema);
  if (sqlitebck_same_file(src_file, dst_file)) {
    sqlitebck_fail(job, SQLITE_MISUSE, SQLITEBCK_FAULT_VALUE,
                   "source and destination are the same database file", 0);
    goto fail;
  }
  length = strlen(src_schema);
  if (length < sizeof job->schema_buf) {
    job->src_schema = memcpy(job->schema_buf, src_schema, length + 1);
  } else {
    job->src_schema = job->api->mprintf("%s", src_schema);
    if (job->src_schema == 0) {
      sqlitebck_fail(job, SQLITE_NOMEM, 0, 0, 0);
      goto fail;
    }
  }
  /* Only a database file can be locked by someone else: the busy timeout
  ** is worth taking over (by a statement: guarded first) only then. These
  ** statements run the caller's callbacks, so they come before
  ** sqlite3_backup_init(): whatever a callback does to a connection (close
  ** it, replace its database with sqlite3_deserialize()) happens before
  ** the backup refers to its databases. */
  rc = SQLITE_OK;
  if ((src_file && src_file[0]) || (dst_file && dst_file[0])) {
    rc = sqlitebck_guard(job);
  }
  if (rc == SQLITE_OK && src_file && src_file[0] &&
      sqlitebck_registry_take_busy(api, src) != SQLITE_OK) {
    rc = sqlitebck_fail_on(job, src, SQLITEBCK_TAKE_BUSY_FAILED);
  }
  if (rc == SQLITE_OK && dst_file && dst_file[0] &&
      sqlitebck_registry_take_busy(api, dst) != SQLITE_OK) {
    rc = sqlitebck_fail_on(job, dst, SQLITEBCK_TAKE_BUSY_FAILED);
  }
  if (rc != SQLITE_OK) {
    goto fail;
  }
  if (src_file && src_file[0]) {
    job->snapshot =
        pages > 0 ? SQLITEBCK_SNAPSHOT_IF_WAL : SQLITEBCK_SNAPSHOT_NOW;
  } else {
    job->snapshot = pages > 0 ? SQLITEBCK_SNAPSHOT_AFTER_RESTARTS
                              : SQLITEBCK_SNAPSHOT_SECOND_STEP;
  }
  job->backup = job->api->backup_init(dst, dst_schema, src, src_schema);
  if (job->backup == 0) {
    sqlitebck_fail(job, sqlitebck_errcode(job, dst), 0, 0, dst);
    goto fail;
  }
  return SQLITE_OK;
fail:
  sqlitebck_end_locked(job);
  return job->error.rc;
}

/*
** Start copying schema SRC_SCHEMA of connection SRC over schema DST_SCHEMA
** of connection DST (references as for sqlitebck_handle()), both opened by
** SQLite library LIBRARY (an index from sqlitebck_bind()): the caller
** guarantees that, as SQLite must never be handed another library's
** connection. PAGES is the batch size the caller will step with (<= 0:
** everything, as one snapshot; see SNAPSHOT RULES). The job uses LIBRARY
** until it ends.
**
** Refuses, before anything is written, with a fault (see sqlitebck_fault()):
**   SQLITE_MISUSE - no library has index LIBRARY, or a connection is closed
**                   (FAULT_USAGE), or SRC and DST are one connection, or
**                   both schemas are the same database file (FAULT_VALUE);
**   SQLITE_ERROR  - DST has a transaction open on DST_SCHEMA, or a
**                   connection takes part in another job in a way that
**                   conflicts with this one (FAULT_NONE);
**   SQLITE_BUSY   - SRC has a write transaction open on SRC_SCHEMA (SQLite
**                   would answer SQLITE_BUSY to every step, for ever).
** Other errors come from SQLite ("unknown database", ...).
**
** On SQLITE_OK the job is open: the caller drives it with sqlitebck_step()
** and, if it stops before the copy ends, ends it with sqlitebck_end(). On
** any error the job is already ended.
*/
int sqlitebck_start(sqlitebck_job *job, int library, uintptr_t src,
                    const char *src_schema, uintptr_t dst,
                    const char *dst_schema, int pages) {
  int rc =
      sqlitebck_open(job, library, src, src_schema, dst, dst_schema, pages);
  return sqlitebck_return(job, rc);
}

/*
** The body of sqlitebck_step(), the mutexes held; a job that completes or
** fails is ended here.
*/
static int sqlitebck_run(sqlitebck_job *job, int pages, int budget_ms,
                         int fresh) {
  /* FRESH: the job was opened by this very call, which checked the source
  ** for a write transaction already, holding the mutexes since. */
  double deadline =
      (fresh ? job->started : sqlitebck_now()) + budget_ms / 1000.0;
  int stepped = 0; /* steps taken by this call */

  if (job->batch_left <= 0) {
    job->batch_left = pages > 0 ? pages : INT_MAX;
  }
  for (;;) {
    int n = job->batch_left < SQLITEBCK_CHUNK_PAGES ? job->batch_left
                                                    : SQLITEBCK_CHUNK_PAGES;
    int copied = job->counts.pagecount - job->counts.remaining;
    int rc;

    /* The point of no return: a step that copies the last pages commits.
    ** Unless it is the first step of this call, return before it (the
    ** batch unfinished), so that the caller sees a pending interrupt or
    ** cancellation while the destination still has its previous content,
    ** and the step that commits is a call of its own. Only under a
    ** snapshot, though: without one, a writer that commits in between
    ** would make SQLite restart the copy, at the end of every batch. */
    if (stepped > 0 && job->counts.remaining <= n &&
        job->snapshot == SQLITEBCK_SNAPSHOT_HELD) {
      job->counts.in_batch = 1;
      return SQLITE_OK;
    }

    if (!(fresh && stepped == 0) && job->api->txn_state &&
        job->api->txn_state(job->src, job->src_schema) == SQLITE_TXN_WRITE) {
      job->counts.in_batch = 1;
      return sqlitebck_fail(job, SQLITE_BUSY, SQLITEBCK_FAULT_NONE,
                            "the source connection has a write transaction "
                            "open; the copy goes on once it is committed or "
                            "rolled back",
                            0);
    }
    rc = sqlitebck_check_dst(job);
    if (rc == SQLITE_OK) {
      rc = sqlitebck_take_snapshot(job, pages);
    }
    if (rc == SQLITE_OK) {
      rc = job->api->backup_step(job->backup, n);
      job->counts.remaining = job->api->backup_remaining(job->backup);
      job->counts.pagecount = job->api->backup_pagecount(job->backup);
      if (rc != SQLITE_OK && rc != SQLITE_DONE) {
        sqlitebck_fail(job, rc, 0, 0, 0);
      }
    }
    if (rc != SQLITE_OK && rc != SQLITE_DONE) {
      job->counts.in_batch = 1;
      if ((rc & 0xff) != SQLITE_BUSY && (rc & 0xff) != SQLITE_LOCKED) {
        sqlitebck_end_locked(job);
      }
      return rc;
    }
    job->counts.steps++;
    stepped++;
    /* Without a restart, a step that did not finish moves on by exactly n
    ** pages; after one, SQLite started again from page 1. */
    if (rc == SQLITE_OK && copied > 0 &&
        job->counts.pagecount - job->counts.remaining != copied + n) {
      job->counts.restarts++;
    }
    job->batch_left -= n;
    if (rc == SQLITE_DONE) {
      job->batch_left = 0;
      job->counts.in_batch = 0;
      job->counts.committed = 1;
      rc = sqlitebck_end_locked(job);
      return rc == SQLITE_OK ? SQLITE_DONE : rc;
    }
    if (job->batch_left == 0 || sqlitebck_now() >= deadline) {
      job->counts.in_batch = job->batch_left > 0;
      return SQLITE_OK;
    }
  }
}

/*
** Copy one batch of PAGES pages (PAGES <= 0: everything that is left), in
** steps of at most SQLITEBCK_CHUNK_PAGES, returning early once BUDGET_MS
** milliseconds have passed (counts.in_batch is then 1, and the next call
** goes on with the same batch whatever PAGES it is given, unless
** sqlitebck_new_batch() is called first).
**
** Before every step, the source must have no write transaction open (if
** another thread holds one, SQLITE_BUSY with a fault of kind FAULT_NONE,
** to be retried) and the destination must be as the job left it (see
** sqlitebck_check_dst()).
**
** The step that would copy the last pages, and so commit, is taken only as
** the first step of a call: a call that has stepped already returns
** SQLITE_OK before it (see the point of no return in sqlitebck_run()).
**
** Returns SQLITE_DONE when the copy is complete and committed
** (counts.committed is then 1); SQLITE_OK when more is to be copied;
** SQLITE_BUSY or SQLITE_LOCKED (possibly extended) when a lock held
** elsewhere stopped it, to be retried; or another error. On SQLITE_DONE
** and on every error but SQLITE_BUSY and SQLITE_LOCKED the job is ended
** before this returns.
*/
int sqlitebck_step(sqlitebck_job *job, int pages, int budget_ms) {
  if (sqlitebck_forked(job)) {
    return sqlitebck_fail(job, SQLITE_MISUSE, SQLITEBCK_FAULT_USAGE,
                          "the copy belongs to the process that started it, "
                          "not to this child of fork()",
                          0);
  }
  if (!job->counts.open) {
    return sqlitebck_fail(job, SQLITE_MISUSE, SQLITEBCK_FAULT_USAGE,
                          "the copy is over", 0);
  }
  sqlitebck_enter(job);
  return sqlitebck_return(job, sqlitebck_run(job, pages, budget_ms, 0));
}

/*
** Make the next sqlitebck_step() start a new batch, even if the last one
** did not finish.
*/
void sqlitebck_new_batch(sqlitebck_job *job) {
  job->batch_left = 0;
  job->counts.in_batch = 0;
}

/*
** sqlitebck_start(), then a first sqlitebck_step(), in one call: the whole
** copy when one step is enough, as it is for small databases. Returns what
** the one that stopped returned, with the job open or ended as they say.
*/
int sqlitebck_copy(sqlitebck_job *job, int library, uintptr_t src,
                   const char *src_schema, uintptr_t dst,
                   const char *dst_schema, int pages, int budget_ms) {
  int rc =
      sqlitebck_open(job, library, src, src_schema, dst, dst_schema, pages);
  if (rc == SQLITE_OK) {
    rc = sqlitebck_run(job, pages, budget_ms, 1);
  }
  return sqlitebck_return(job, rc);
}

/*
** End the job, whatever its state (see sqlitebck_end_locked()); ending an
** ended job, or in a child of fork() a job of its parent (see
** sqlitebck_forked()), does nothing and returns SQLITE_OK. Returns the
** result of sqlite3_backup_finish().
*/
int sqlitebck_end(sqlitebck_job *job) {
  if (sqlitebck_forked(job) || !job->counts.open) {
    return SQLITE_OK;
  }
  sqlitebck_enter(job);
  return sqlitebck_return(job, sqlitebck_end_locked(job));
}

/* The message of the job's last error. */
const char *sqlitebck_errmsg(const sqlitebck_job *job) {
  return job->error.text ? job->error.text : "not an error";
}

/* The kind of the job's last error (enum sqlitebck_fault_kind). */
int sqlitebck_fault(const sqlitebck_job *job) { return job->error.fault; }
