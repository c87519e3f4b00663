/*
** registry.c -- the connections in use: every connection that a job uses
** is listed here for as long as the job lives, with what the jobs do with
** it. The list serves two purposes:
**
**   - Busy timeouts. A job sets the busy timeout of a file connection to
**     zero, so that a lock held elsewhere returns SQLITE_BUSY at once and
**     the caller's bounded, interruptible retry loop does the waiting. The
**     first job to take a connection's busy handling over saves its timeout,
**     the last job to use the connection gives it back, so that any number
**     of jobs sharing a connection (threads with check_same_thread=False),
**     ending in any order, restore the right one.
**
**   - Conflicts. A connection that is the destination of one job holds a
**     half-written database: it can be neither the destination nor the
**     source of another job until the first one ends.
**
** THREAD SAFETY: the list and its entries are process-wide, read and
** written only under sqlitebck_list_lock() (library.c). The lock is never
** held while SQLite runs anything (SQLite may call back into Python, and
** Python into a new job).
*/
#include "registry.h"

#include <stdlib.h>
#include <string.h>

struct sqlitebck_user {
  sqlite3 *db;
  int jobs;     /* jobs using db, as source or destination */
  int as_dst;   /* of which as destination (0 or 1) */
  int busy;     /* SQLITEBCK_BUSY_* below */
  int saved_ms; /* the busy timeout to give back, once SQLITEBCK_BUSY_TAKEN */
  struct sqlitebck_user *next;
};

#define SQLITEBCK_BUSY_UNTOUCHED 0 /* nobody changed the busy timeout */
#define SQLITEBCK_BUSY_READING 1   /* a job is reading and taking it over */
#define SQLITEBCK_BUSY_TAKEN 2     /* zero now; saved_ms to be given back */

static struct sqlitebck_user *sqlitebck_users;
/* Entries no longer listed, kept for reuse: allocating and freeing one per
** connection and copy costs a small copy dearly (the allocator then
** consolidates its free chunks whenever SQLite asks for a page). */
static struct sqlitebck_user *sqlitebck_spare_users;

/* sqlite3_exec() callback: store the first column of a row as an int. */
static int sqlitebck_registry_int_column(void *out, int ncol, char **values,
                                         char **names) {
  (void)names;
  if (ncol > 0 && values[0]) {
    *(int *)out = atoi(values[0]);
  }
  return 0;
}

/* The entry of DB, or 0. The caller holds the lock. */
static struct sqlitebck_user *sqlitebck_find_user(const sqlite3 *db) {
  struct sqlitebck_user *u;
  for (u = sqlitebck_users; u; u = u->next) {
    if (u->db == db) {
      return u;
    }
  }
  return 0;
}

/*
** The entry of DB, added (unlisted yet: no jobs) if there is none, or 0 when
** out of memory. The caller holds the lock.
*/
static struct sqlitebck_user *sqlitebck_entry(sqlite3 *db) {
  struct sqlitebck_user *u = sqlitebck_find_user(db);
  if (u == 0) {
    u = sqlitebck_spare_users;
    if (u) {
      sqlitebck_spare_users = u->next;
      memset(u, 0, sizeof *u);
    } else {
      u = (struct sqlitebck_user *)calloc(1, sizeof *u);
    }
    if (u) {
      u->db = db;
      u->next = sqlitebck_users;
      sqlitebck_users = u;
    }
  }
  return u;
}

/*
** Take DB's entry off the list if no job uses it any more, and return it
** (the caller gives it to sqlitebck_spare()), else return 0. The caller
** holds the lock.
*/
static struct sqlitebck_user *sqlitebck_drop_unused(const sqlite3 *db) {
  struct sqlitebck_user **p;
  for (p = &sqlitebck_users; *p; p = &(*p)->next) {
    if ((*p)->db == db) {
      struct sqlitebck_user *u = *p;
      if (u->jobs > 0) {
        return 0;
      }
      *p = u->next;
      return u;
    }
  }
  return 0;
}

/* Keep entry U (0: none), off the list, for reuse. The caller holds the
** lock. */
static void sqlitebck_spare(struct sqlitebck_user *u) {
  if (u) {
    u->next = sqlitebck_spare_users;
    sqlitebck_spare_users = u;
  }
}

/*
** List SRC as the source and DST as the destination of one more job, both
** or neither. Returns SQLITE_OK; SQLITE_ERROR with *CONFLICT set to the
** reason when a running job writes either connection, or when DST is used
** by another job (or is SRC); or SQLITE_NOMEM.
*/
int sqlitebck_registry_add(sqlite3 *src, sqlite3 *dst, const char **conflict) {
  struct sqlitebck_user *s;
  struct sqlitebck_user *d;
  int rc = SQLITE_OK;

  *conflict = 0;
  sqlitebck_list_lock();
  s = sqlitebck_find_user(src);
  d = sqlitebck_find_user(dst);
  if (s && s->as_dst) {
    *conflict = "the source connection is the destination of another copy in "
                "progress";
  } else if (d && d->as_dst) {
    *conflict = "the destination connection is already the destination of "
                "another copy in progress";
  } else if (d || src == dst) {
    *conflict = "the destination connection is the source of another copy in "
                "progress";
  } else {
    s = sqlitebck_entry(src);
    d = s ? sqlitebck_entry(dst) : 0;
    if (d) {
      s->jobs++;
      d->jobs++;
      d->as_dst = 1;
    } else {
      rc = SQLITE_NOMEM;
    }
  }
  if (*conflict) {
    rc = SQLITE_ERROR;
  }
  if (rc == SQLITE_NOMEM) {
    sqlitebck_spare(sqlitebck_drop_unused(src));
  }
  sqlitebck_list_unlock();
  return rc;
}

/*
** Take over the busy handling of DB, listed by sqlitebck_registry_add():
** the first job to do so reads its busy timeout and sets it to zero, on
** library API (DB's own). Returns SQLITE_OK, or the error of reading it (a
** caller's authorizer may refuse the PRAGMA), DB's error message set.
*/
int sqlitebck_registry_take_busy(const struct sqlitebck_api *api, sqlite3 *db) {
  struct sqlitebck_user *u;
  int ms = 0;
  int first;
  int rc;

  sqlitebck_list_lock();
  u = sqlitebck_find_user(db);
  first = u->busy == SQLITEBCK_BUSY_UNTOUCHED;
  if (first) {
    u->busy = SQLITEBCK_BUSY_READING;
  }
  sqlitebck_list_unlock();
  if (!first) {
    return SQLITE_OK;
  }
  rc = api->exec(db, "PRAGMA busy_timeout", sqlitebck_registry_int_column, &ms,
                 0);
  if (rc == SQLITE_OK) {
    api->busy_timeout(db, 0);
  }
  sqlitebck_list_lock();
  u->busy = rc == SQLITE_OK ? SQLITEBCK_BUSY_TAKEN : SQLITEBCK_BUSY_UNTOUCHED;
  u->saved_ms = ms;
  sqlitebck_list_unlock();
  return rc;
}

/*
** Take SRC and DST off the list for one job, as added together by
** sqlitebck_registry_add(); the last job to use a connection gives its
** busy timeout back, on library API. Both must still be allocated (see
** sqlitebck_end() in backup.c for the order).
*/
void sqlitebck_registry_remove(const struct sqlitebck_api *api, sqlite3 *src,
                               sqlite3 *dst) {
  struct sqlitebck_user *gone[2];
  int i;

  sqlitebck_list_lock();
  sqlitebck_find_user(src)->jobs--;
  sqlitebck_find_user(dst)->jobs--;
  sqlitebck_find_user(dst)->as_dst = 0;
  gone[0] = sqlitebck_drop_unused(src);
  gone[1] = sqlitebck_drop_unused(dst);
  sqlitebck_list_unlock();
  for (i = 0; i < 2; i++) {
    if (gone[i] && gone[i]->busy == SQLITEBCK_BUSY_TAKEN) {
      api->busy_timeout(gone[i]->db, gone[i]->saved_ms);
    }
  }
  sqlitebck_list_lock();
  sqlitebck_spare(gone[0]);
  sqlitebck_spare(gone[1]);
  sqlitebck_list_unlock();
}
