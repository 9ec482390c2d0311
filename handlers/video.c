#include "handlers/video.h"
#include <stdlib.h>
#include <string.h>

void gw_video_meta_free(gw_video_meta_t *m)
{
    if (m == NULL)
        return;
    free(m->id);
    free(m->title);
    free(m->channel);
    free(m->upload_date);
    free(m->language);
    free(m->live_status);
    free(m->availability);
    for (size_t i = 0; i < m->nchapters; i++)
        free(m->chapters[i].title);
    free(m->chapters);
    memset(m, 0, sizeof(*m));
}

void gw_transcript_free(gw_transcript_t *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->nsegments; i++)
        free(t->segments[i].text);
    free(t->segments);
    free(t->language);
    free(t->source);
    memset(t, 0, sizeof(*t));
}
