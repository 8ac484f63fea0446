/* Snapshots of a program running under km (docs/snapshots.md).
 *
 * km_snapshot_take() asks km for a snapshot through km's system call 505
 * (KM_SNAPSHOT). It returns 0 in the program that goes on (live != 0), 1 in a
 * program restored from the snapshot (`km kmsnap`), and -1 with errno set when
 * km refuses (EBUSY while another snapshot is in progress, ENOTSUP for state km
 * cannot restore; ENOSYS outside km). With live == 0 a successful snapshot ends
 * the program (exit status 0). label and description may be NULL.
 */
#ifndef KM_SNAPSHOT_H
#define KM_SNAPSHOT_H

#include <sys/syscall.h>
#include <unistd.h>

#define KM_SNAPSHOT 505

static inline int km_snapshot_take(const char *label, const char *description, int live)
{
    return (int)syscall(KM_SNAPSHOT, label, description, live);
}

#endif
