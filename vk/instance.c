/* instance.c - loader initialisation, VkInstance creation, validation layer and debug messenger.
 *
 * Invariants: volkInitialize runs once per process (pthread_once); the instance requests Vulkan
 * 1.2 or the highest version the loader supports above it (capped at 1.3); the validation layer is
 * enabled only if installed, together with VK_EXT_debug_utils and, when the layer exposes
 * VK_EXT_validation_features, synchronization validation. Sanitizer builds keep the driver and
 * layer libraries mapped until exit (keep_vulkan_modules). */
#include "instance.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "vk_check.h"

#define VKM_VALIDATION_LAYER "VK_LAYER_KHRONOS_validation"

static pthread_once_t g_volk_once = PTHREAD_ONCE_INIT;
static VkResult g_volk_result = VK_ERROR_INITIALIZATION_FAILED;
static pthread_once_t g_warn_once = PTHREAD_ONCE_INIT;

static void volk_init_once(void) {
    g_volk_result = volkInitialize();
}

#ifdef VKMOE_SANITIZE
#include <dlfcn.h>
#include <link.h>

#define MAX_KEPT 64

typedef struct kept_names {
    char name[MAX_KEPT][512];
    int n;
} kept_names;

/* dl_iterate_phdr callback: collects the Vulkan drivers (libvulkan_*) and layers (libVkLayer*). */
static int find_vulkan_module(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    kept_names *k = data;
    const char *path = info->dlpi_name, *base = path ? strrchr(path, '/') : NULL;
    base = base ? base + 1 : path;
    if (base && k->n < MAX_KEPT && strlen(path) < sizeof k->name[0] &&
        (!strncmp(base, "libvulkan_", 10) || !strncmp(base, "libVkLayer", 10)))
        strcpy(k->name[k->n++], path);
    return 0;
}

/* Sanitizer builds: the Vulkan loader unloads the drivers and layers at vkDestroyInstance, and
 * memory a driver still points to from its own globals then looks leaked to LeakSanitizer, with
 * frames it can only print as "<unknown module>" (Mesa 22.3.6 lavapipe: a few 128-byte blocks in
 * every process on some machines). Opening each of them once more and never closing it keeps them
 * mapped until exit: such memory stays reachable, and real leaks name their library
 * (tests/lsan.supp). */
static void keep_vulkan_modules(void) {
    static kept_names k;
    k.n = 0;
    dl_iterate_phdr(find_vulkan_module, &k);
    for (int i = 0; i < k.n; i++) (void)dlopen(k.name[i], RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}
#endif

static void warn_no_layer(void) {
    fprintf(stderr, "vkmoe: warning: validation requested but " VKM_VALIDATION_LAYER
                    " is not installed (Debian: vulkan-validationlayers); continuing without\n");
}

static VKAPI_ATTR VkBool32 VKAPI_CALL on_debug_message(
    VkDebugUtilsMessageSeverityFlagBitsEXT severity, VkDebugUtilsMessageTypeFlagsEXT types,
    const VkDebugUtilsMessengerCallbackDataEXT *data, void *user) {
    vkm_vk_instance *inst = user;
    if (severity & VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT) {
        __atomic_add_fetch(&inst->validation_errors, 1, __ATOMIC_RELAXED);
        fprintf(stderr, "vulkan validation: %s\n",
                data && data->pMessage ? data->pMessage : "(no message)");
    }
    return VK_FALSE;
}

static bool env_validation(void) {
    const char *e = getenv("VKMOE_VALIDATION");
    return e && !strcmp(e, "1");
}

static bool has_layer(const char *name) {
    uint32_t n = 0;
    if (vkEnumerateInstanceLayerProperties(&n, NULL) < 0 || n == 0) return false;
    VkLayerProperties *props = calloc(n, sizeof *props);
    if (!props) return false;
    bool found = false;
    if (vkEnumerateInstanceLayerProperties(&n, props) >= 0)
        for (uint32_t i = 0; i < n && !found; i++) found = !strcmp(props[i].layerName, name);
    free(props);
    return found;
}

static bool has_instance_ext(const char *layer, const char *name) {
    uint32_t n = 0;
    if (vkEnumerateInstanceExtensionProperties(layer, &n, NULL) < 0 || n == 0) return false;
    VkExtensionProperties *props = calloc(n, sizeof *props);
    if (!props) return false;
    bool found = false;
    if (vkEnumerateInstanceExtensionProperties(layer, &n, props) >= 0)
        for (uint32_t i = 0; i < n && !found; i++) found = !strcmp(props[i].extensionName, name);
    free(props);
    return found;
}

int vkm_vk_instance_create(bool validation, vkm_vk_instance **out) {
    *out = NULL;
    pthread_once(&g_volk_once, volk_init_once);
    if (g_volk_result != VK_SUCCESS)
        return vkm_error(VKM_ENODEV, "no Vulkan loader found (libvulkan.so.1); install libvulkan1 "
                                     "and a Vulkan driver (e.g. mesa-vulkan-drivers)");
    uint32_t loader_version = volkGetInstanceVersion();
    if (loader_version < VK_API_VERSION_1_2)
        return vkm_error(
            VKM_ENODEV, "the Vulkan loader supports only Vulkan %u.%u; vkmoe needs 1.2 or newer",
            VK_API_VERSION_MAJOR(loader_version), VK_API_VERSION_MINOR(loader_version));

    vkm_vk_instance *inst = calloc(1, sizeof *inst);
    if (!inst) return vkm_error(VKM_ENOMEM, "out of memory creating the Vulkan instance");
    inst->api_version =
        loader_version >= VK_API_VERSION_1_3 ? VK_API_VERSION_1_3 : VK_API_VERSION_1_2;

    bool want_validation = validation || env_validation();
    if (want_validation && !has_layer(VKM_VALIDATION_LAYER)) {
        pthread_once(&g_warn_once, warn_no_layer);
        want_validation = false;
    }
    bool debug_utils = want_validation &&
                       (has_instance_ext(NULL, VK_EXT_DEBUG_UTILS_EXTENSION_NAME) ||
                        has_instance_ext(VKM_VALIDATION_LAYER, VK_EXT_DEBUG_UTILS_EXTENSION_NAME));
    bool val_features =
        want_validation &&
        has_instance_ext(VKM_VALIDATION_LAYER, VK_EXT_VALIDATION_FEATURES_EXTENSION_NAME);
    bool portability = has_instance_ext(NULL, VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME);

    const char *exts[4];
    uint32_t n_exts = 0;
    if (debug_utils) exts[n_exts++] = VK_EXT_DEBUG_UTILS_EXTENSION_NAME;
    if (val_features) exts[n_exts++] = VK_EXT_VALIDATION_FEATURES_EXTENSION_NAME;
    if (portability) exts[n_exts++] = VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME;
    const char *layers[1] = {VKM_VALIDATION_LAYER};

    VkApplicationInfo app = {
        .sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
        .pApplicationName = "vkmoe",
        .applicationVersion = VK_MAKE_API_VERSION(0, 0, 1, 0),
        .pEngineName = "vkmoe",
        .engineVersion = VK_MAKE_API_VERSION(0, 0, 1, 0),
        .apiVersion = inst->api_version,
    };
    VkDebugUtilsMessengerCreateInfoEXT dbg = {
        .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
        .messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT,
        .messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT |
                       VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT,
        .pfnUserCallback = on_debug_message,
        .pUserData = inst,
    };
    VkValidationFeatureEnableEXT enables[] = {
        VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT,
    };
    VkValidationFeaturesEXT vfeat = {
        .sType = VK_STRUCTURE_TYPE_VALIDATION_FEATURES_EXT,
        .pNext = debug_utils ? &dbg : NULL,
        .enabledValidationFeatureCount = 1,
        .pEnabledValidationFeatures = enables,
    };
    const void *chain = NULL;
    if (val_features)
        chain = &vfeat;
    else if (debug_utils)
        chain = &dbg;
    VkInstanceCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
        .pNext = chain,
        .flags = portability ? VK_INSTANCE_CREATE_ENUMERATE_PORTABILITY_BIT_KHR : 0,
        .pApplicationInfo = &app,
        .enabledLayerCount = want_validation ? 1 : 0,
        .ppEnabledLayerNames = layers,
        .enabledExtensionCount = n_exts,
        .ppEnabledExtensionNames = exts,
    };
    VkResult r = vkCreateInstance(&ci, NULL, &inst->instance);
    if (r == VK_ERROR_INCOMPATIBLE_DRIVER) {
        free(inst);
        return vkm_error(VKM_ENODEV,
                         "no Vulkan driver found (vkCreateInstance: %s); install "
                         "mesa-vulkan-drivers or your GPU vendor's Vulkan driver",
                         vkm_vk_result_name(r));
    }
    if (r < 0) {
        free(inst);
        return vkm_vk_fail(r, "vkCreateInstance", __FILE__, __LINE__);
    }
    volkLoadInstanceOnly(inst->instance);
#ifdef VKMOE_SANITIZE
    keep_vulkan_modules();
#endif
    inst->validation = want_validation;
    if (debug_utils && vkCreateDebugUtilsMessengerEXT) {
        r = vkCreateDebugUtilsMessengerEXT(inst->instance, &dbg, NULL, &inst->messenger);
        if (r < 0) {
            int rc = vkm_vk_fail(r, "vkCreateDebugUtilsMessengerEXT", __FILE__, __LINE__);
            vkm_vk_instance_destroy(inst);
            return rc;
        }
    }
    *out = inst;
    return VKM_OK;
}

void vkm_vk_instance_destroy(vkm_vk_instance *inst) {
    if (!inst) return;
    if (inst->instance) {
        /* volk's instance-level pointers are process-wide; make sure they belong to this
         * instance's loader chain before using them (another instance may have been loaded). */
        if (volkGetLoadedInstance() != inst->instance) volkLoadInstanceOnly(inst->instance);
        if (inst->messenger) vkDestroyDebugUtilsMessengerEXT(inst->instance, inst->messenger, NULL);
        vkDestroyInstance(inst->instance, NULL);
    }
    free(inst);
}

uint32_t vkm_vk_instance_errors(const vkm_vk_instance *inst) {
    return inst ? __atomic_load_n(&inst->validation_errors, __ATOMIC_RELAXED) : 0;
}

int vkm_vk_instance_devices(vkm_vk_instance *inst, VkPhysicalDevice **out, uint32_t *count) {
    *out = NULL;
    *count = 0;
    uint32_t n = 0;
    VK_CHECK(vkEnumeratePhysicalDevices(inst->instance, &n, NULL));
    if (n == 0)
        return vkm_error(VKM_ENODEV, "no Vulkan device found; install mesa-vulkan-drivers "
                                     "(lavapipe, a CPU device) or your GPU vendor's driver");
    VkPhysicalDevice *devs = calloc(n, sizeof *devs);
    if (!devs) return vkm_error(VKM_ENOMEM, "out of memory listing Vulkan devices");
    VkResult r = vkEnumeratePhysicalDevices(inst->instance, &n, devs);
    if (r < 0) {
        free(devs);
        return vkm_vk_fail(r, "vkEnumeratePhysicalDevices", __FILE__, __LINE__);
    }
    *out = devs;
    *count = n;
    return VKM_OK;
}
