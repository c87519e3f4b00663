/*
** sqlite_abi.h -- what the C core knows of SQLite beyond its result codes
** (those are in sqlitebck.h, shared with Python): a few constants, and the
** public VFS objects sqlite3_vfs, sqlite3_file and sqlite3_io_methods, as
** SQLite documents them (stable ABI: members are never reordered or
** removed, only appended). No <sqlite3.h> is included: see sqlitebck.h.
** Declared once here for backup.c (which reads a database file through
** SQLite's own file object) and vfs.c (the shims).
*/
#ifndef SQLITEBCK_SQLITE_ABI_H
#define SQLITEBCK_SQLITE_ABI_H

#define SQLITE_TXN_NONE 0
#define SQLITE_TXN_WRITE 2
#define SQLITE_FCNTL_FILE_POINTER 7
#define SQLITE_LIMIT_SQL_LENGTH 1
#define SQLITE_OPEN_MAIN_DB 0x00000100

typedef long long sqlitebck_int64;

/*
** The method tables are declared up to version 2, the highest that the
** shims use and read.
*/
struct sqlitebck_os_file;
struct sqlitebck_os_io {
  int version;
  int (*close)(struct sqlitebck_os_file *);
  int (*read)(struct sqlitebck_os_file *, void *, int, sqlitebck_int64);
  int (*write)(struct sqlitebck_os_file *, const void *, int, sqlitebck_int64);
  int (*truncate)(struct sqlitebck_os_file *, sqlitebck_int64);
  int (*sync)(struct sqlitebck_os_file *, int);
  int (*file_size)(struct sqlitebck_os_file *, sqlitebck_int64 *);
  int (*lock)(struct sqlitebck_os_file *, int);
  int (*unlock)(struct sqlitebck_os_file *, int);
  int (*check_reserved_lock)(struct sqlitebck_os_file *, int *);
  int (*file_control)(struct sqlitebck_os_file *, int, void *);
  int (*sector_size)(struct sqlitebck_os_file *);
  int (*device_characteristics)(struct sqlitebck_os_file *);
  /* version 2 */
  int (*shm_map)(struct sqlitebck_os_file *, int, int, int, void volatile **);
  int (*shm_lock)(struct sqlitebck_os_file *, int, int, int);
  void (*shm_barrier)(struct sqlitebck_os_file *);
  int (*shm_unmap)(struct sqlitebck_os_file *, int);
};

struct sqlitebck_os_file {
  const struct sqlitebck_os_io *methods; /* 0: not open */
};

typedef void (*sqlitebck_os_call)(void);
struct sqlitebck_os;
typedef sqlitebck_os_call (*sqlitebck_os_dl_sym_fn)(struct sqlitebck_os *,
                                                    void *, const char *);
typedef sqlitebck_os_call (*sqlitebck_os_get_call_fn)(struct sqlitebck_os *,
                                                      const char *);
struct sqlitebck_os {
  int version;
  int file_size; /* bytes of the sqlite3_file this VFS opens */
  int max_path;
  struct sqlitebck_os *next;
  const char *name;
  void *app_data;
  int (*open)(struct sqlitebck_os *, const char *, struct sqlitebck_os_file *,
              int, int *);
  int (*remove)(struct sqlitebck_os *, const char *, int);
  int (*access)(struct sqlitebck_os *, const char *, int, int *);
  int (*full_pathname)(struct sqlitebck_os *, const char *, int, char *);
  void *(*dl_open)(struct sqlitebck_os *, const char *);
  void (*dl_error)(struct sqlitebck_os *, int, char *);
  sqlitebck_os_dl_sym_fn dl_sym;
  void (*dl_close)(struct sqlitebck_os *, void *);
  int (*randomness)(struct sqlitebck_os *, int, char *);
  int (*sleep)(struct sqlitebck_os *, int);
  int (*current_time)(struct sqlitebck_os *, double *);
  int (*get_last_error)(struct sqlitebck_os *, int, char *);
  /* version 2 */
  int (*current_time_int64)(struct sqlitebck_os *, sqlitebck_int64 *);
  /* version 3 */
  int (*set_system_call)(struct sqlitebck_os *, const char *,
                         sqlitebck_os_call);
  sqlitebck_os_get_call_fn get_system_call;
  const char *(*next_system_call)(struct sqlitebck_os *, const char *);
};

#endif /* SQLITEBCK_SQLITE_ABI_H */
