/*
** vfs.c -- the VFS shims of sqlitebck: faster I/O for the files that the
** library opens itself, and only for those.
**
** Two shims are registered on the bound SQLite library, each wrapping the
** default VFS that the library had when it was bound (the "real" VFS):
**
**   sqlitebck-writer  For the private temporary file that a copy to a new
**                     destination path is written into (a file no other
**                     connection opens: see sqlitebck/_endpoints.py).
**                     Sequential page writes are gathered into one buffer of
**                     SQLITEBCK_GATHER bytes, and handed to the real VFS's
**                     xWrite in pieces of SQLITEBCK_PIECE bytes, before
**                     anything else is done with the file.
**
**   sqlitebck-reader  For a source path that the library opens read-only.
**                     Sequential page reads are served from one buffer of
**                     SQLITEBCK_AHEAD bytes, read at once by the real VFS's
**                     xRead, and forgotten whenever the file may have changed.
**
** Only the main database file gets the shim's methods; every other file
** (journals, WAL, temporary files) is opened by the real VFS in place, and
** runs exactly as if the shim were not there. Locks, shared memory, file
** controls and syncs always reach the real VFS: the shims change how many
** calls the data takes, never what the file holds once a call returns
** (for the writer: once the next call other than a write returns).
**
** Nothing here reaches into SQLite's private structures: only the public,
** stable sqlite3_vfs, sqlite3_file and sqlite3_io_methods objects, declared
** below as SQLite documents them, and the two registration functions of the
** bound library, which sqlitebck_bind() passes in (sqlitebck_vfs_install()).
**
** Every function returns an SQLite result code unless its comment says
** otherwise.
*/
#if defined(__linux__) && !defined(_GNU_SOURCE)
/* A feature-test macro, for sync_file_range(). */
#define _GNU_SOURCE /* NOLINT(bugprone-reserved-identifier) */
#endif
#include "sqlitebck.h"

#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <fcntl.h>
#include <unistd.h>
#define SQLITEBCK_HAVE_WRITEBACK 1
#else
#define SQLITEBCK_HAVE_WRITEBACK 0
#endif

/*
** Bytes gathered by the writer before they are written: 256 KiB. (1 MiB
** measured no faster; a buffer's pages cost a fault each when first used.)
*/
#define SQLITEBCK_GATHER 262144
/*
** Bytes handed to the real VFS's xWrite at a time. SQLite's unix VFS keeps
** only the low 17 bits of a write's length (a write of 128 KiB or more is
** cut short, and fails with SQLITE_FULL), so a piece is always smaller.
*/
#define SQLITEBCK_PIECE 65536
/*
** Bytes the reader reads at once: 128 KiB, 32 pages of 4 KiB in one call.
** (1 MiB was no faster on large files, and made a copy of a 1 MB file to
** memory three times slower: the buffer is new for every file, and each of
** its pages costs a fault when first used.)
*/
#define SQLITEBCK_AHEAD 131072
/*
** Bytes the writer writes between two requests to start writing them back
** to the disk (Linux: sync_file_range(SYNC_FILE_RANGE_WRITE)), so that the
** disk writes while the copy goes on, and the sync before the file is
** published only waits for the last of them: 4 MiB. A smaller file is
** never asked for (see THE WRITER).
*/
#define SQLITEBCK_WRITEBACK 4194304

/*
** A main database file opened through a shim: the shim's state, then the
** real VFS's file, which this struct's methods call. The real file starts
** at the first multiple of 8 bytes after the struct.
*/
struct sqlitebck_shim_file {
  struct sqlitebck_os_file base; /* methods: the shim's */
  struct sqlitebck_os_file *real;
  unsigned char *buf;     /* the writer's gathered bytes, the reader's cache;
                             allocated on first use, 0 until then */
  sqlitebck_int64 start;  /* file offset of buf[0] */
  int used;               /* bytes of buf that hold data */
  sqlitebck_int64 next;   /* reader: offset just past the last read */
  int error;              /* writer: the error of writing gathered bytes, */
                          /*   returned by every call after it */
  const char *name;       /* writer: the file's name (SQLite keeps it valid
                             until xClose) */
  int fd;                 /* writer: a descriptor of its own for write-back
                             requests, opened on first use; -1 before, -2
                             once it could not be opened */
  sqlitebck_int64 unsent; /* writer: bytes written since the last request */
};

#define SQLITEBCK_SHIM_SIZE ((sizeof(struct sqlitebck_shim_file) + 7) / 8 * 8)

/* The real VFS of a shim VFS. */
static struct sqlitebck_os *sqlitebck_real_os(struct sqlitebck_os *os) {
  return (struct sqlitebck_os *)os->app_data;
}

/* The real file of a shim file. */
static struct sqlitebck_os_file *sqlitebck_real(struct sqlitebck_os_file *f) {
  return ((struct sqlitebck_shim_file *)f)->real;
}

/* The shim's state of a shim file. */
static struct sqlitebck_shim_file *sqlitebck_shim(struct sqlitebck_os_file *f) {
  return (struct sqlitebck_shim_file *)f;
}

/*
** THE WRITER
**
** Contract: the bytes of every xWrite are in the file, as far as any other
** method of this file and every reader of the file can tell, once any
** method other than xWrite has been called on it; xSync makes them durable
** as the real xSync does. A write that cannot be gathered (not sequential,
** or larger than the buffer) writes what is gathered, then itself. When
** writing gathered bytes fails, that error is returned by the call that
** wrote them and by every later call that reads, writes, syncs, sizes,
** locks or controls the file, so that no commit can succeed after bytes were
** lost.
**
** Write-back (Linux): once SQLITEBCK_WRITEBACK bytes have been written to
** the real file, the writer asks the kernel to start writing the file's
** dirty pages to the disk (sync_file_range with SYNC_FILE_RANGE_WRITE only:
** it starts the writes, waits for none, reports no write error and makes
** nothing durable). It uses a read-only descriptor of its own, opened by the
** file's name on the first request and closed after the real file: a
** private file that no other connection opens (closing it drops no lock
** that anyone still needs). Durability is still the sync's alone, and a
** write error still reaches that sync (the request never waits, so it never
** reports nor consumes one). If the descriptor cannot be opened (out of
** descriptors), the copy goes on without the requests.
*/

/*
** Count N more bytes written to writer file F, and ask for their write-back
** once SQLITEBCK_WRITEBACK of them are waiting (see THE WRITER). No error:
** the request is a hint.
*/
static void sqlitebck_written(struct sqlitebck_shim_file *f, int n) {
#if SQLITEBCK_HAVE_WRITEBACK
  f->unsent += n;
  if (f->unsent < SQLITEBCK_WRITEBACK || f->fd == -2) {
    return;
  }
  f->unsent = 0;
  if (f->fd == -1) {
    f->fd = f->name ? open(f->name, O_RDONLY | O_CLOEXEC) : -1;
    if (f->fd < 0) {
      f->fd = -2;
      return;
    }
  }
  (void)sync_file_range(f->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
#else
  (void)f;
  (void)n;
#endif
}

/* Write N bytes of DATA at OFFSET through the real file, in pieces. */
static int sqlitebck_write_pieces(struct sqlitebck_os_file *real,
                                  const unsigned char *data, int n,
                                  sqlitebck_int64 offset) {
  while (n > 0) {
    int piece = n < SQLITEBCK_PIECE ? n : SQLITEBCK_PIECE;
    int rc = real->methods->write(real, data, piece, offset);
    if (rc != SQLITE_OK) {
      return rc;
    }
    data += piece;
    offset += piece;
    n -= piece;
  }
  return SQLITE_OK;
}

/*
** Write the gathered bytes of writer file F, if any; they are dropped
** either way. Returns SQLITE_OK, or the error recorded in F.
*/
static int sqlitebck_flush(struct sqlitebck_shim_file *f) {
  if (f->error == SQLITE_OK && f->used > 0) {
    f->error = sqlitebck_write_pieces(f->real, f->buf, f->used, f->start);
    if (f->error == SQLITE_OK) {
      sqlitebck_written(f, f->used);
    }
  }
  f->used = 0;
  return f->error;
}

/*
** xClose: write the gathered bytes, close the real file, then the
** write-back descriptor (after the real file: closing a descriptor drops
** the process's locks on the file), free the buffer.
*/
static int sqlitebck_writer_close(struct sqlitebck_os_file *file) {
  struct sqlitebck_shim_file *f = sqlitebck_shim(file);
  int rc = sqlitebck_flush(f);
  int closed = f->real->methods->close(f->real);
#if SQLITEBCK_HAVE_WRITEBACK
  if (f->fd >= 0) {
    (void)close(f->fd);
  }
#endif
  f->fd = -1;
  free(f->buf);
  f->buf = 0;
  return rc != SQLITE_OK ? rc : closed;
}

/* xRead: write the gathered bytes, then read. */
static int sqlitebck_writer_read(struct sqlitebck_os_file *file, void *data,
                                 int n, sqlitebck_int64 offset) {
  struct sqlitebck_shim_file *f = sqlitebck_shim(file);
  int rc = sqlitebck_flush(f);
  return rc != SQLITE_OK ? rc
                         : f->real->methods->read(f->real, data, n, offset);
}

/* xWrite: gather N bytes of DATA at OFFSET (see THE WRITER). */
static int sqlitebck_writer_write(struct sqlitebck_os_file *file,
                                  const void *data, int n,
                                  sqlitebck_int64 offset) {
  struct sqlitebck_shim_file *f = sqlitebck_shim(file);
  int rc;

  if (f->error != SQLITE_OK) {
    return f->error;
  }
  if (f->used > 0 && offset >= f->start && offset <= f->start + f->used &&
      offset - f->start + n <= SQLITEBCK_GATHER) {
    /* Next to the gathered bytes, or over them: gather it. */
    int at = (int)(offset - f->start);
    memcpy(f->buf + at, data, (size_t)n);
    if (at + n > f->used) {
      f->used = at + n;
    }
    return SQLITE_OK;
  }
  rc = sqlitebck_flush(f);
  if (rc != SQLITE_OK) {
    return rc;
  }
  if (f->buf == 0 && n <= SQLITEBCK_GATHER / 2) {
    f->buf = (unsigned char *)malloc(SQLITEBCK_GATHER);
  }
  if (f->buf == 0 || n > SQLITEBCK_GATHER / 2) {
    rc =
        sqlitebck_write_pieces(f->real, (const unsigned char *)data, n, offset);
    if (rc == SQLITE_OK) {
      sqlitebck_written(f, n);
    }
    return rc;
  }
  memcpy(f->buf, data, (size_t)n);
  f->start = offset;
  f->used = n;
  return SQLITE_OK;
}

/* xTruncate: write the gathered bytes, then truncate. */
static int sqlitebck_writer_truncate(struct sqlitebck_os_file *file,
                                     sqlitebck_int64 size) {
  struct sqlitebck_shim_file *f = sqlitebck_shim(file);
  int rc = sqlitebck_flush(f);
  return rc != SQLITE_OK ? rc : f->real->methods->truncate(f->real, size);
}

/* xSync: write the gathered bytes, then sync. */
static int sqlitebck_writer_sync(struct sqlitebck_os_file *file, int flags) {
  struct sqlitebck_shim_file *f = sqlitebck_shim(file);
  int rc = sqlitebck_flush(f);
  return rc != SQLITE_OK ? rc : f->real->methods->sync(f->real, flags);
}

/* xFileSize: write the gathered bytes, then ask. */
static int sqlitebck_writer_file_size(struct sqlitebck_os_file *file,
                                      sqlitebck_int64 *size) {
  struct sqlitebck_shim_file *f = sqlitebck_shim(file);
  int rc = sqlitebck_flush(f);
  return rc != SQLITE_OK ? rc : f->real->methods->file_size(f->real, size);
}

/* xLock: write the gathered bytes, then lock. */
static int sqlitebck_writer_lock(struct sqlitebck_os_file *file, int level) {
  struct sqlitebck_shim_file *f = sqlitebck_shim(file);
  int rc = sqlitebck_flush(f);
  return rc != SQLITE_OK ? rc : f->real->methods->lock(f->real, level);
}

/*
** xUnlock: write the gathered bytes, then unlock (even after an error: a
** lock is never kept because bytes were lost).
*/
static int sqlitebck_writer_unlock(struct sqlitebck_os_file *file, int level) {
  struct sqlitebck_shim_file *f = sqlitebck_shim(file);
  int rc = sqlitebck_flush(f);
  int unlocked = f->real->methods->unlock(f->real, level);
  return rc != SQLITE_OK ? rc : unlocked;
}

/* xCheckReservedLock: write the gathered bytes, then ask. */
static int sqlitebck_writer_check_reserved_lock(struct sqlitebck_os_file *file,
                                                int *out) {
  struct sqlitebck_shim_file *f = sqlitebck_shim(file);
  sqlitebck_flush(f);
  return f->real->methods->check_reserved_lock(f->real, out);
}

/*
** xFileControl: write the gathered bytes, then pass the control on; if
** they could not be written, return that error instead. (A commit sends
** SQLITE_FCNTL_SYNC even with PRAGMA synchronous=OFF, and fails on an
** error: so a commit never succeeds after gathered bytes were lost.)
*/
static int sqlitebck_writer_file_control(struct sqlitebck_os_file *file, int op,
                                         void *arg) {
  struct sqlitebck_shim_file *f = sqlitebck_shim(file);
  int rc = sqlitebck_flush(f);
  return rc != SQLITE_OK ? rc
                         : f->real->methods->file_control(f->real, op, arg);
}

/* xShmMap: write the gathered bytes, then map. */
static int sqlitebck_writer_shm_map(struct sqlitebck_os_file *file, int page,
                                    int size, int extend, void volatile **out) {
  struct sqlitebck_shim_file *f = sqlitebck_shim(file);
  sqlitebck_flush(f);
  return f->real->methods->shm_map(f->real, page, size, extend, out);
}

/* xShmLock: write the gathered bytes, then lock. */
static int sqlitebck_writer_shm_lock(struct sqlitebck_os_file *file, int offset,
                                     int n, int flags) {
  struct sqlitebck_shim_file *f = sqlitebck_shim(file);
  sqlitebck_flush(f);
  return f->real->methods->shm_lock(f->real, offset, n, flags);
}

/* xShmUnmap: write the gathered bytes, then unmap. */
static int sqlitebck_writer_shm_unmap(struct sqlitebck_os_file *file,
                                      int delete_flag) {
  struct sqlitebck_shim_file *f = sqlitebck_shim(file);
  sqlitebck_flush(f);
  return f->real->methods->shm_unmap(f->real, delete_flag);
}

/*
** THE READER
**
** Contract: every xRead returns the bytes that the real xRead would return
** at that moment, and the same result code. Bytes are served from the cache
** only between two calls that could let the file change (a lock or an
** unlock, a shared-memory lock, a write, a truncation, a sync, a file
** control, a close): each of those forgets the cache first. SQLite reads a
** database file only under a lock that keeps the bytes it reads from
** changing (a SHARED lock in rollback mode; in WAL mode, a read mark that
** stops checkpoints from writing the pages it reads from the file), so the
** cache holds what the file holds for as long as SQLite may read it.
**
** The cache is filled only by a sequential read (one that starts where the
** last read ended), never past the end of the file; a read it cannot serve,
** and a fill that fails, go to the real xRead unchanged.
*/

/* Forget the reader's cache. */
static void sqlitebck_forget(struct sqlitebck_os_file *file) {
  sqlitebck_shim(file)->used = 0;
}

/* xClose: close the real file, free the cache. */
static int sqlitebck_reader_close(struct sqlitebck_os_file *file) {
  struct sqlitebck_shim_file *f = sqlitebck_shim(file);
  int rc = f->real->methods->close(f->real);
  free(f->buf);
  f->buf = 0;
  f->used = 0;
  return rc;
}

/*
** Fill the cache of reader file F from OFFSET, for a read of N bytes.
** Returns 1 if the cache now holds those N bytes, else 0 (not an error: the
** read is then done by the real xRead).
*/
static int sqlitebck_fill(struct sqlitebck_shim_file *f, int n,
                          sqlitebck_int64 offset) {
  sqlitebck_int64 size = 0;
  sqlitebck_int64 left;
  int want;

  if (n > SQLITEBCK_AHEAD / 4 || offset != f->next || offset <= 0) {
    return 0;
  }
  if (f->real->methods->file_size(f->real, &size) != SQLITE_OK) {
    return 0;
  }
  left = size - offset;
  if (left < 2 * (sqlitebck_int64)n) {
    return 0; /* nothing worth reading ahead */
  }
  want = left < (sqlitebck_int64)SQLITEBCK_AHEAD ? (int)left : SQLITEBCK_AHEAD;
  if (f->buf == 0) {
    f->buf = (unsigned char *)malloc(SQLITEBCK_AHEAD);
    if (f->buf == 0) {
      return 0;
    }
  }
  if (f->real->methods->read(f->real, f->buf, want, offset) != SQLITE_OK) {
    return 0; /* the real xRead says what is wrong, once asked for N bytes */
  }
  f->start = offset;
  f->used = want;
  return 1;
}

/* xRead: serve N bytes at OFFSET from the cache (see THE READER). */
static int sqlitebck_reader_read(struct sqlitebck_os_file *file, void *data,
                                 int n, sqlitebck_int64 offset) {
  struct sqlitebck_shim_file *f = sqlitebck_shim(file);

  if ((f->used > 0 && offset >= f->start && offset + n <= f->start + f->used) ||
      sqlitebck_fill(f, n, offset)) {
    memcpy(data, f->buf + (offset - f->start), (size_t)n);
    f->next = offset + n;
    return SQLITE_OK;
  }
  f->used = 0;
  f->next = offset + n;
  return f->real->methods->read(f->real, data, n, offset);
}

/* xWrite: forget the cache, then write. */
static int sqlitebck_reader_write(struct sqlitebck_os_file *file,
                                  const void *data, int n,
                                  sqlitebck_int64 offset) {
  sqlitebck_forget(file);
  return sqlitebck_real(file)->methods->write(sqlitebck_real(file), data, n,
                                              offset);
}

/* xTruncate: forget the cache, then truncate. */
static int sqlitebck_reader_truncate(struct sqlitebck_os_file *file,
                                     sqlitebck_int64 size) {
  sqlitebck_forget(file);
  return sqlitebck_real(file)->methods->truncate(sqlitebck_real(file), size);
}

/* xSync: forget the cache, then sync. */
static int sqlitebck_reader_sync(struct sqlitebck_os_file *file, int flags) {
  sqlitebck_forget(file);
  return sqlitebck_real(file)->methods->sync(sqlitebck_real(file), flags);
}

/* xFileSize: ask the real file. */
static int sqlitebck_reader_file_size(struct sqlitebck_os_file *file,
                                      sqlitebck_int64 *size) {
  return sqlitebck_real(file)->methods->file_size(sqlitebck_real(file), size);
}

/* xLock: forget the cache, then lock. */
static int sqlitebck_reader_lock(struct sqlitebck_os_file *file, int level) {
  sqlitebck_forget(file);
  return sqlitebck_real(file)->methods->lock(sqlitebck_real(file), level);
}

/* xUnlock: forget the cache, then unlock. */
static int sqlitebck_reader_unlock(struct sqlitebck_os_file *file, int level) {
  sqlitebck_forget(file);
  return sqlitebck_real(file)->methods->unlock(sqlitebck_real(file), level);
}

/* xCheckReservedLock: ask the real file. */
static int sqlitebck_reader_check_reserved_lock(struct sqlitebck_os_file *file,
                                                int *out) {
  return sqlitebck_real(file)->methods->check_reserved_lock(
      sqlitebck_real(file), out);
}

/* xFileControl: forget the cache, then pass the control on. */
static int sqlitebck_reader_file_control(struct sqlitebck_os_file *file, int op,
                                         void *arg) {
  sqlitebck_forget(file);
  return sqlitebck_real(file)->methods->file_control(sqlitebck_real(file), op,
                                                     arg);
}

/* xShmMap: forget the cache, then map. */
static int sqlitebck_reader_shm_map(struct sqlitebck_os_file *file, int page,
                                    int size, int extend, void volatile **out) {
  sqlitebck_forget(file);
  return sqlitebck_real(file)->methods->shm_map(sqlitebck_real(file), page,
                                                size, extend, out);
}

/* xShmLock: forget the cache, then lock. */
static int sqlitebck_reader_shm_lock(struct sqlitebck_os_file *file, int offset,
                                     int n, int flags) {
  sqlitebck_forget(file);
  return sqlitebck_real(file)->methods->shm_lock(sqlitebck_real(file), offset,
                                                 n, flags);
}

/* xShmUnmap: forget the cache, then unmap. */
static int sqlitebck_reader_shm_unmap(struct sqlitebck_os_file *file,
                                      int delete_flag) {
  sqlitebck_forget(file);
  return sqlitebck_real(file)->methods->shm_unmap(sqlitebck_real(file),
                                                  delete_flag);
}

/*
** METHODS SHARED BY BOTH SHIMS
*/

/* xSectorSize: the real file's. */
static int sqlitebck_sector_size(struct sqlitebck_os_file *file) {
  return sqlitebck_real(file)->methods->sector_size(sqlitebck_real(file));
}

/* xDeviceCharacteristics: the real file's. */
static int sqlitebck_device_characteristics(struct sqlitebck_os_file *file) {
  return sqlitebck_real(file)->methods->device_characteristics(
      sqlitebck_real(file));
}

/* xShmBarrier: the real file's. */
static void sqlitebck_shm_barrier(struct sqlitebck_os_file *file) {
  sqlitebck_real(file)->methods->shm_barrier(sqlitebck_real(file));
}

/*
** The method tables: version 2 (with shared memory, for WAL) when the real
** file has it, else version 1. Never version 3: memory-mapped reads and
** writes would go around the shims.
*/
static const struct sqlitebck_os_io sqlitebck_writer_io[2] = {
    {1, sqlitebck_writer_close, sqlitebck_writer_read, sqlitebck_writer_write,
     sqlitebck_writer_truncate, sqlitebck_writer_sync,
     sqlitebck_writer_file_size, sqlitebck_writer_lock, sqlitebck_writer_unlock,
     sqlitebck_writer_check_reserved_lock, sqlitebck_writer_file_control,
     sqlitebck_sector_size, sqlitebck_device_characteristics, 0, 0, 0, 0},
    {2, sqlitebck_writer_close, sqlitebck_writer_read, sqlitebck_writer_write,
     sqlitebck_writer_truncate, sqlitebck_writer_sync,
     sqlitebck_writer_file_size, sqlitebck_writer_lock, sqlitebck_writer_unlock,
     sqlitebck_writer_check_reserved_lock, sqlitebck_writer_file_control,
     sqlitebck_sector_size, sqlitebck_device_characteristics,
     sqlitebck_writer_shm_map, sqlitebck_writer_shm_lock, sqlitebck_shm_barrier,
     sqlitebck_writer_shm_unmap}};

static const struct sqlitebck_os_io sqlitebck_reader_io[2] = {
    {1, sqlitebck_reader_close, sqlitebck_reader_read, sqlitebck_reader_write,
     sqlitebck_reader_truncate, sqlitebck_reader_sync,
     sqlitebck_reader_file_size, sqlitebck_reader_lock, sqlitebck_reader_unlock,
     sqlitebck_reader_check_reserved_lock, sqlitebck_reader_file_control,
     sqlitebck_sector_size, sqlitebck_device_characteristics, 0, 0, 0, 0},
    {2, sqlitebck_reader_close, sqlitebck_reader_read, sqlitebck_reader_write,
     sqlitebck_reader_truncate, sqlitebck_reader_sync,
     sqlitebck_reader_file_size, sqlitebck_reader_lock, sqlitebck_reader_unlock,
     sqlitebck_reader_check_reserved_lock, sqlitebck_reader_file_control,
     sqlitebck_sector_size, sqlitebck_device_characteristics,
     sqlitebck_reader_shm_map, sqlitebck_reader_shm_lock, sqlitebck_shm_barrier,
     sqlitebck_reader_shm_unmap}};

/*
** xOpen of both shims: open NAME with the real VFS. A main database file
** gets the shim's methods (IO: the shim's two tables) around the real file;
** any other file is the real VFS's own file, opened in place. On failure the
** file is left not open (methods 0), as SQLite requires.
*/
static int sqlitebck_open_with(struct sqlitebck_os *os, const char *name,
                               struct sqlitebck_os_file *file, int flags,
                               int *out_flags,
                               const struct sqlitebck_os_io *io) {
  struct sqlitebck_os *real_os = sqlitebck_real_os(os);
  struct sqlitebck_shim_file *f = sqlitebck_shim(file);
  const struct sqlitebck_os_io *real_io;
  int rc;

  if ((flags & SQLITE_OPEN_MAIN_DB) == 0) {
    return real_os->open(real_os, name, file, flags, out_flags);
  }
  memset(f, 0, sizeof *f);
  f->name = name;
  f->fd = -1;
  f->real = (struct sqlitebck_os_file *)((char *)file + SQLITEBCK_SHIM_SIZE);
  rc = real_os->open(real_os, name, f->real, flags, out_flags);
  real_io = f->real->methods;
  if (real_io == 0) {
    return rc != SQLITE_OK ? rc : SQLITE_ERROR;
  }
  f->base.methods = &io[real_io->version >= 2 && real_io->shm_map != 0 ? 1 : 0];
  return rc;
}

static int sqlitebck_writer_open(struct sqlitebck_os *os, const char *name,
                                 struct sqlitebck_os_file *file, int flags,
                                 int *out_flags) {
  return sqlitebck_open_with(os, name, file, flags, out_flags,
                             sqlitebck_writer_io);
}

static int sqlitebck_reader_open(struct sqlitebck_os *os, const char *name,
                                 struct sqlitebck_os_file *file, int flags,
                                 int *out_flags) {
  return sqlitebck_open_with(os, name, file, flags, out_flags,
                             sqlitebck_reader_io);
}

/*
** The other VFS methods of both shims: the real VFS's, called with the real
** VFS (whose methods may read their own object).
*/
static int sqlitebck_os_remove(struct sqlitebck_os *os, const char *name,
                               int sync_dir) {
  return sqlitebck_real_os(os)->remove(sqlitebck_real_os(os), name, sync_dir);
}

static int sqlitebck_os_access(struct sqlitebck_os *os, const char *name,
                               int flags, int *out) {
  return sqlitebck_real_os(os)->access(sqlitebck_real_os(os), name, flags, out);
}

static int sqlitebck_os_full_pathname(struct sqlitebck_os *os, const char *name,
                                      int n, char *out) {
  return sqlitebck_real_os(os)->full_pathname(sqlitebck_real_os(os), name, n,
                                              out);
}

static void *sqlitebck_os_dl_open(struct sqlitebck_os *os, const char *name) {
  return sqlitebck_real_os(os)->dl_open(sqlitebck_real_os(os), name);
}

static void sqlitebck_os_dl_error(struct sqlitebck_os *os, int n, char *out) {
  sqlitebck_real_os(os)->dl_error(sqlitebck_real_os(os), n, out);
}

static sqlitebck_os_call sqlitebck_os_dl_sym(struct sqlitebck_os *os,
                                             void *handle, const char *name) {
  sqlitebck_os_dl_sym_fn dl_sym = sqlitebck_real_os(os)->dl_sym;
  sqlitebck_os_call symbol = dl_sym(sqlitebck_real_os(os), handle, name);
  return symbol;
}

static void sqlitebck_os_dl_close(struct sqlitebck_os *os, void *handle) {
  sqlitebck_real_os(os)->dl_close(sqlitebck_real_os(os), handle);
}

static int sqlitebck_os_randomness(struct sqlitebck_os *os, int n, char *out) {
  return sqlitebck_real_os(os)->randomness(sqlitebck_real_os(os), n, out);
}

static int sqlitebck_os_sleep(struct sqlitebck_os *os, int microseconds) {
  return sqlitebck_real_os(os)->sleep(sqlitebck_real_os(os), microseconds);
}

static int sqlitebck_os_current_time(struct sqlitebck_os *os, double *out) {
  return sqlitebck_real_os(os)->current_time(sqlitebck_real_os(os), out);
}

static int sqlitebck_os_get_last_error(struct sqlitebck_os *os, int n,
                                       char *out) {
  return sqlitebck_real_os(os)->get_last_error(sqlitebck_real_os(os), n, out);
}

static int sqlitebck_os_current_time_int64(struct sqlitebck_os *os,
                                           sqlitebck_int64 *out) {
  return sqlitebck_real_os(os)->current_time_int64(sqlitebck_real_os(os), out);
}

/*
** The shims registered on one SQLite library. They are never unregistered
** nor freed: SQLite keeps pointers to them for as long as the process
** lives.
*/
struct sqlitebck_shims {
  struct sqlitebck_os writer;
  struct sqlitebck_os reader;
};

/* Set up shim OS, named NAME and opening files with OPEN, around REAL. */
static void sqlitebck_shim_os(struct sqlitebck_os *os,
                              struct sqlitebck_os *real, const char *name,
                              int (*open)(struct sqlitebck_os *, const char *,
                                          struct sqlitebck_os_file *, int,
                                          int *)) {
  memset(os, 0, sizeof *os);
  os->version = real->version >= 2 && real->current_time_int64 ? 2 : 1;
  os->file_size = (int)SQLITEBCK_SHIM_SIZE + real->file_size;
  os->max_path = real->max_path;
  os->name = name;
  os->app_data = real;
  os->open = open;
  os->remove = sqlitebck_os_remove;
  os->access = sqlitebck_os_access;
  os->full_pathname = sqlitebck_os_full_pathname;
  os->dl_open = real->dl_open ? sqlitebck_os_dl_open : 0;
  os->dl_error = real->dl_error ? sqlitebck_os_dl_error : 0;
  os->dl_sym = real->dl_sym ? sqlitebck_os_dl_sym : 0;
  os->dl_close = real->dl_close ? sqlitebck_os_dl_close : 0;
  os->randomness = sqlitebck_os_randomness;
  os->sleep = sqlitebck_os_sleep;
  os->current_time = sqlitebck_os_current_time;
  os->get_last_error = sqlitebck_os_get_last_error;
  os->current_time_int64 =
      os->version >= 2 ? sqlitebck_os_current_time_int64 : 0;
}

/* Whether the library bound last has the shims (see sqlitebck_vfs_name()). */
static int sqlitebck_shims_ready = 0;

/*
** Register both shims on the SQLite library whose sqlite3_vfs_find() and
** sqlite3_vfs_register() are FIND and REGISTER, around its default VFS, as
** non-default VFSes: no connection uses them unless it names them. A
** library that already has them keeps them (the shims are registered once
** per library, whatever the number of calls).
**
** Returns SQLITE_OK; SQLITE_ERROR if either function is missing (0) or the
** library has no default VFS;
** SQLITE_NOMEM; or the error of registering. Whatever it returns, the
** library works as before: it only decides whether sqlitebck_vfs_name()
** names the shims. Not thread-safe: called while binding, at import.
*/
int sqlitebck_vfs_install(sqlitebck_vfs_find find,
                          sqlitebck_vfs_register register_vfs) {
  struct sqlitebck_os *real;
  struct sqlitebck_os *found;
  struct sqlitebck_shims *shims;
  int rc;

  sqlitebck_shims_ready = 0;
  if (find == 0 || register_vfs == 0) {
    return SQLITE_ERROR;
  }
  found = (struct sqlitebck_os *)find(SQLITEBCK_VFS_WRITER_NAME);
  if (found && found->open == sqlitebck_writer_open &&
      find(SQLITEBCK_VFS_READER_NAME) != 0) {
    sqlitebck_shims_ready = 1;
    return SQLITE_OK;
  }
  real = (struct sqlitebck_os *)find(0);
  if (real == 0 || real->open == 0 || real->file_size < 0) {
    return SQLITE_ERROR;
  }
  shims = (struct sqlitebck_shims *)calloc(1, sizeof *shims);
  if (shims == 0) {
    return SQLITE_NOMEM;
  }
  sqlitebck_shim_os(&shims->writer, real, SQLITEBCK_VFS_WRITER_NAME,
                    sqlitebck_writer_open);
  sqlitebck_shim_os(&shims->reader, real, SQLITEBCK_VFS_READER_NAME,
                    sqlitebck_reader_open);
  rc = register_vfs(&shims->writer, 0);
  if (rc == SQLITE_OK) {
    rc = register_vfs(&shims->reader, 0);
  }
  /* Once registered, a shim belongs to SQLite: never freed. */
  sqlitebck_shims_ready = rc == SQLITE_OK;
  return rc;
}

/*
** The name of shim KIND (enum sqlitebck_vfs_kind), for a "vfs=" URI
** parameter, if the bound library has the shims; else 0.
*/
const char *sqlitebck_vfs_name(int kind) {
  if (!sqlitebck_shims_ready) {
    return 0;
  }
  return kind == SQLITEBCK_VFS_WRITER ? SQLITEBCK_VFS_WRITER_NAME
                                      : SQLITEBCK_VFS_READER_NAME;
}
