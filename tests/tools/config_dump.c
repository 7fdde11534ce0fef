/* config_dump FILE: loads a dxsync configuration with the real loader (validation, ${ENV}) and
 * prints its instances and routes as JSON, for tests of the deployment files. Exit 2 with the
 * loader's message when the file is refused. */
#include "config.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: config_dump FILE\n");
        return 2;
    }
    struct config cfg;
    char err[1024];
    if (config_load_file(argv[1], &cfg, err, sizeof(err))) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    cJSON *root = cJSON_CreateObject();
    cJSON *insts = cJSON_AddArrayToObject(root, "instances");
    for (size_t i = 0; i < cfg.ninstances; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", cfg.instances[i].name);
        cJSON_AddStringToObject(o, "url", cfg.instances[i].url);
        cJSON_AddBoolToObject(o, "database", cfg.instances[i].database != NULL);
        cJSON_AddItemToArray(insts, o);
    }
    cJSON *routes = cJSON_AddArrayToObject(root, "routes");
    for (size_t i = 0; i < cfg.nroutes; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "from", cfg.routes[i].from);
        cJSON_AddStringToObject(o, "to", cfg.routes[i].to);
        cJSON_AddItemToArray(routes, o);
    }
    char *text = cJSON_PrintUnformatted(root);
    printf("%s\n", text);
    free(text);
    cJSON_Delete(root);
    config_free(&cfg);
    return 0;
}
