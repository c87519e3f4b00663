/*
** library.c -- the SQLite libraries of sqlitebck, and the connections'
** handles.
**
**   1. Symbol binding. The sqlite3_* functions are looked up at run time in
**      the SQLite libraries that Python modules already loaded (the sqlite3
**      module's, and those of pysqlite3, sqlean, sqlcipher3 or APSW), one
**      table of functions per library, so that this extension never brings
**      another SQLite into the process, and a connection is only ever
**      handed to the library that opened it.
**
**   2. The connection handle accessor, for CPython, whose connection objects
**      keep their "sqlite3 *" right after the object header.
**
**   3. A database file's first bytes, read through SQLite's own file.
**
**   4. The process-wide lock of the shared tables (this file's libraries,
**      backup.c's connections in use).
**
** Every function returns an SQLite result code unless its comment says
** otherwise.
*/
#ifndef _GNU_SOURCE
/* A feature-test macro, for RTLD_NOLOAD on Linux. */
#define _GNU_SOURCE /* NOLINT(bugprone-reserved-identifier) */
#endif

#include "library.h"

#include <stdio.h>
#include <string.h>

#ifdef _WIN32
#include <windows.h>
#else
#include <dlfcn.h>
#include <pthread.h>
#include <unistd.h>
#endif

/*
** The tables of the libraries bound so far, one per SQLite library in the
** process, in the order they were bound; a library is referred to by its
** index here. sqlitebck_bind() fills a table (under the lock of the
** connections in use, below) before it returns its index, and the table
** never changes afterwards: a caller that holds an index reads its table
** without a lock. Few processes hold more than two SQLite libraries: the
** sqlite3 module's and perhaps one more.
*/
#define SQLITEBCK_MAX_LIBRARIES 8
static struct sqlitebck_api sqlitebck_libraries[SQLITEBCK_MAX_LIBRARIES];
static int sqlitebck_nlibraries;

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
    {"sqlite3_commit_hook", offsetof(struct sqlitebck_api, commit_hook), 1},
    {"sqlite3_db_mutex", offsetof(struct sqlitebck_api, db_mutex), 1},
    {"sqlite3_rollback_hook", offsetof(struct sqlitebck_api, rollback_hook), 1},
    {"sqlite3_db_filename", offsetof(struct sqlitebck_api, db_filename), 1},
    {"sqlite3_errmsg", offsetof(struct sqlitebck_api, errmsg), 1},
    {"sqlite3_errstr", offsetof(struct sqlitebck_api, errstr), 1},
    {"sqlite3_exec", offsetof(struct sqlitebck_api, exec), 1},
    {"sqlite3_extended_errcode",
     offsetof(struct sqlitebck_api, extended_errcode), 1},
    {"sqlite3_file_control", offsetof(struct sqlitebck_api, file_control), 1},
    {"sqlite3_limit", offsetof(struct sqlitebck_api, limit), 1},
    {"sqlite3_finalize", offsetof(struct sqlitebck_api, finalize), 1},
    {"sqlite3_free", offsetof(struct sqlitebck_api, free), 1},
    {"sqlite3_get_autocommit", offsetof(struct sqlitebck_api, get_autocommit),
     1},
    {"sqlite3_mprintf", offsetof(struct sqlitebck_api, mprintf), 1},
    {"sqlite3_mutex_enter", offsetof(struct sqlitebck_api, mutex_enter), 1},
    {"sqlite3_mutex_leave", offsetof(struct sqlitebck_api, mutex_leave), 1},
    {"sqlite3_next_stmt", offsetof(struct sqlitebck_api, next_stmt), 1},
    {"sqlite3_prepare_v2", offsetof(struct sqlitebck_api, prepare_v2), 1},
    {"sqlite3_step", offsetof(struct sqlitebck_api, step), 1},
    {"sqlite3_stmt_busy", offsetof(struct sqlitebck_api, stmt_busy), 1},
    {"sqlite3_total_changes", offsetof(struct sqlitebck_api, total_changes), 1},
    {"sqlite3_txn_state", offsetof(struct sqlitebck_api, txn_state), 0},
    {"sqlite3_vfs_find", offsetof(struct sqlitebck_api, vfs_find), 0},
    {"sqlite3_vfs_register", offsetof(struct sqlitebck_api, vfs_register), 0},
};

/*
** THE PROCESS
**
** sqlitebck_process() is the id of the process it runs in, so that a job
** can tell its parent's jobs from its own in a child of fork() (backup.c).
** getpid() is a system call, a noticeable part of copying a small
** database: the id is read once, when the first library is bound, and
** again in every child of fork(), by a handler registered then. Should
** registering fail, every call asks the system.
*/
#ifdef _WIN32
long sqlitebck_process(void) { return (long)GetCurrentProcessId(); }
static void sqlitebck_know_process(void) {}
#else
static volatile long sqlitebck_pid; /* 0: unknown, ask getpid() */

static void sqlitebck_forked_child(void) { sqlitebck_pid = (long)getpid(); }

/* Learn the process id and keep it current; called once, at first bind. */
static void sqlitebck_know_process(void) {
  if (pthread_atfork(0, 0, sqlitebck_forked_child) == 0) {
    sqlitebck_pid = (long)getpid();
  }
}

long sqlitebck_process(void) {
  long pid = sqlitebck_pid;
  return pid ? pid : (long)getpid();
}
#endif

/*
** Resolve every function of struct sqlitebck_api from the SQLite library
** that is already loaded into the process through LIBRARY: a loaded module
** file, whose dependencies are searched too (Linux, macOS: dlopen with
** RTLD_NOLOAD, then dlsym), or a loaded DLL (Windows: GetModuleHandle, then
** GetProcAddress; sqlite3.dll for the sqlite3 module, as _sqlite3.pyd
** exports nothing of SQLite); or the main program when LIBRARY is 0.
** Nothing new is ever loaded.
**
** On SQLITE_OK, *INDEX is the library's index for the other calls: the
** index it already had if the same library was bound before (through
** another module that links it), else a new one. Returns SQLITE_ERROR with
** a message in ERR (NERR bytes) naming what was tried, or when
** SQLITEBCK_MAX_LIBRARIES libraries are bound already. This is the one
** place that knows about the platform's dynamic loader.
** The VFS shims of vfs.c are registered on the first library bound, the
** sqlite3 module's, the only one whose files the library opens through them
** (when that fails, the library is bound all the same, and
** sqlitebck_vfs_name() names no shim).
*/
int sqlitebck_bind(const char *library, int *index, char *err, int nerr) {
  struct sqlitebck_api api;
  const char *what = library ? library : "the main program";
  size_t i;
  int fresh;
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
  sqlitebck_list_lock();
  fresh = 0;
  for (i = 0; i < (size_t)sqlitebck_nlibraries; i++) {
    if (sqlitebck_libraries[i].backup_init == api.backup_init) {
      break; /* the same library, bound through another module */
    }
  }
  if (i == (size_t)sqlitebck_nlibraries && i < SQLITEBCK_MAX_LIBRARIES) {
    sqlitebck_libraries[i] = api;
    sqlitebck_nlibraries++;
    fresh = 1;
  }
  sqlitebck_list_unlock();
  if (i == SQLITEBCK_MAX_LIBRARIES) {
    snprintf(err, (size_t)nerr,
             "%s is one SQLite library too many: %d are bound already", what,
             SQLITEBCK_MAX_LIBRARIES);
    return SQLITE_ERROR;
  }
  *index = (int)i;
  if (fresh && i == 0) {
    sqlitebck_vfs_install(api.vfs_find, api.vfs_register);
    sqlitebck_know_process();
  }
  return SQLITE_OK;
}

/*
** The table of library LIBRARY, an index that sqlitebck_bind() returned to
** the caller, or 0 if the index is out of range or not bound yet.
*/
const struct sqlitebck_api *sqlitebck_api_of(int library) {
  if (library < 0 || library >= SQLITEBCK_MAX_LIBRARIES ||
      sqlitebck_libraries[library].backup_init == 0) {
    return 0;
  }
  return &sqlitebck_libraries[library];
}

/*
** Return sqlite3_libversion() of library LIBRARY (see sqlitebck_bind()), or
** 0 if no library has that index.
*/
const char *sqlitebck_libversion(int library) {
  const struct sqlitebck_api *api = sqlitebck_api_of(library);
  return api ? api->libversion() : 0;
}

/*
** Where the handle of a connection is found. Python refers to a connection
** by an integer: on PyPy, the "sqlite3 *" itself (offset 0); on CPython,
** the address of the connection object, whose "sqlite3 *db" sits right
** after the object header (offset: the header's size) in every module
** sqlitebck accepts (sqlite3, pysqlite3, sqlean, sqlcipher3, APSW). Python
** sets the offset once at import, then checks sqlitebck_handle() against a
** live connection of each module before using it for anything else.
*/
static size_t sqlitebck_handle_offset = 0;

/* Set the offset of the handle in a connection object (0: none). */
void sqlitebck_set_handle_offset(size_t offset) {
  sqlitebck_handle_offset = offset;
}

/*
** Return the "sqlite3 *" of CONNECTION, a reference as described above. The
** caller guarantees that it refers to a live connection object.
*/
sqlite3 *sqlitebck_handle(uintptr_t connection) {
  uintptr_t db;

  if (sqlitebck_handle_offset == 0) {
    return (sqlite3 *)connection;
  }
  memcpy(&db, (const char *)connection + sqlitebck_handle_offset, sizeof db);
  return (sqlite3 *)db;
}

/*
** sqlite3_total_changes() of CONNECTION, called in library LIBRARY, for
** checking sqlitebck_handle(); -1 if no library has that index.
*/
int sqlitebck_total_changes(int library, uintptr_t connection) {
  const struct sqlitebck_api *api = sqlitebck_api_of(library);
  return api ? api->total_changes(sqlitebck_handle(connection)) : -1;
}

/*
** sqlite3_get_autocommit() of CONNECTION, called in library LIBRARY, for
** checking sqlitebck_handle(); -1 if no library has that index.
*/
int sqlitebck_get_autocommit(int library, uintptr_t connection) {
  const struct sqlitebck_api *api = sqlitebck_api_of(library);
  return api ? api->get_autocommit(sqlitebck_handle(connection)) : -1;
}

/*
** Read the first N bytes of the database file of schema SCHEMA of DB into
** BUF, through the file object SQLite has open for it (in library API):
** never by opening the file again, since closing another descriptor of a
** file drops every POSIX lock that the process holds on it. Returns
** SQLITE_OK; SQLITE_IOERR_SHORT_READ if the file is shorter (BUF is then
** zero-filled past its end); SQLITE_NOTFOUND if the schema has no file open
** (an in-memory database); or another error of the read.
*/
int sqlitebck_read_file(const struct sqlitebck_api *api, sqlite3 *db,
                        const char *schema, unsigned char *buf, int n) {
  struct sqlitebck_os_file *file = 0;

  if (api->file_control(db, schema, SQLITE_FCNTL_FILE_POINTER, &file) !=
          SQLITE_OK ||
      file == 0 || file->methods == 0 || file->methods->version < 1 ||
      file->methods->close == 0 || file->methods->read == 0) {
    return SQLITE_NOTFOUND;
  }
  return file->methods->read(file, buf, n, 0);
}

/*
** Read the first N bytes of the database file of schema SCHEMA of
** CONNECTION, in library LIBRARY, into BUF (see sqlitebck_read_file()):
** the header of a file the library opened itself, read without a second
** descriptor. SQLITE_MISUSE if no library has that index.
*/
int sqlitebck_read_header(int library, uintptr_t connection, const char *schema,
                          unsigned char *buf, int n) {
  const struct sqlitebck_api *api = sqlitebck_api_of(library);
  return api ? sqlitebck_read_file(api, sqlitebck_handle(connection), schema,
                                   buf, n)
             : SQLITE_MISUSE;
}

/*
** The file name of schema SCHEMA of CONNECTION, in library LIBRARY: "" for
** an in-memory or temporary database, 0 if there is no such schema (or no
** library with that index). Not a result code.
*/
const char *sqlitebck_filename(int library, uintptr_t connection,
                               const char *schema) {
  const struct sqlitebck_api *api = sqlitebck_api_of(library);
  return api ? api->db_filename(sqlitebck_handle(connection), schema) : 0;
}

/*
** The lock of the shared tables: sqlitebck_list_lock() enters it,
** sqlitebck_list_unlock() leaves it. Never held while SQLite runs anything
** (SQLite may call back into Python, and Python into a new job).
*/
#ifdef _WIN32
static SRWLOCK sqlitebck_shared_lock = SRWLOCK_INIT;
void sqlitebck_list_lock(void) {
  AcquireSRWLockExclusive(&sqlitebck_shared_lock);
}
void sqlitebck_list_unlock(void) {
  ReleaseSRWLockExclusive(&sqlitebck_shared_lock);
}
#else
static pthread_mutex_t sqlitebck_shared_lock = PTHREAD_MUTEX_INITIALIZER;
void sqlitebck_list_lock(void) { pthread_mutex_lock(&sqlitebck_shared_lock); }
void sqlitebck_list_unlock(void) {
  pthread_mutex_unlock(&sqlitebck_shared_lock);
}
#endif
