/*
 * device-c plays a constrained IoT device written in C that keeps no
 * DeviceSecret. It holds only its client certificate and key:
 *
 *   1. it asks signerd over HTTPS, presenting that certificate (libcurl),
 *      for its MQTT CONNECT parameters
 *      (POST /v1/products/{pk}/devices/{dn}:signMqttConnect);
 *   2. reads the answer (cJSON) into fixed-size buffers, refusing any field
 *      that is missing, of the wrong type or too long rather than
 *      truncating a credential;
 *   3. connects to the broker with exactly those parameters (libmosquitto,
 *      MQTT 3.1.1, over TLS or plain TCP);
 *   4. publishes one property report in Alink JSON on
 *      /sys/{pk}/{dn}/thing/event/property/post with QoS 1 and waits for
 *      the broker's PUBACK.
 *
 * With --hold it then stays connected until SIGTERM or SIGINT, so that a
 * test can dump its memory while it holds everything a device holds.
 *
 * It never logs the password; signerd never sends it the secret.
 */
#define _GNU_SOURCE /* getopt_long, explicit_bzero, malloc_usable_size */

#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>
#include <curl/curl.h>
#include <mosquitto.h>

/*
 * Buffer sizes, from the platform's limits: a clientId of up to 64
 * characters plus its "|securemode=2,signmethod=hmacsha256,timestamp=…|"
 * extension; a username "{deviceName}&{productKey}" of at most 32+1+32; a
 * password of at most 64 hex digits (HMAC-SHA256). signerd's whole answer
 * is about 400 bytes; ANSWER_MAX leaves room for longer host names.
 */
#define ANSWER_MAX 4096
#define HOST_MAX 256
#define URI_MAX 300
#define CLIENT_ID_MAX 160
#define USERNAME_MAX 80
#define PASSWORD_MAX 80
#define NAME_MAX_LEN 32 /* productKey and deviceName */
#define TOPIC_MAX 128
#define TIMEOUT_SECONDS 30

static const char *prog = "device-c";

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "%s: ", prog);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

struct config {
	const char *signerd;   /* https://host:port */
	const char *cert, *key; /* the device's certificate and key, PEM */
	const char *ca;         /* CA of signerd's server certificate */
	const char *broker_ca;  /* CA of the broker */
	const char *product_key, *device_name;
	const char *transport;   /* TRANSPORT_TLS or TRANSPORT_TCP */
	const char *sign_method; /* SIGN_METHOD_HMAC_* */
	double temperature;
	bool hold;
};

/* The part of signerd's answer a device needs. */
struct answer {
	char host[HOST_MAX];
	int port;
	char uri[URI_MAX];
	char client_id[CLIENT_ID_MAX];
	char username[USERNAME_MAX];
	char password[PASSWORD_MAX];
	int keep_alive;
	bool clean_session;
};

/* --- HTTPS: ask signerd --------------------------------------------------- */

struct body {
	char data[ANSWER_MAX];
	size_t len;
};

/* collect stores the response in a fixed buffer; a longer answer ends the
 * transfer (CURLE_WRITE_ERROR) instead of growing the heap. */
static size_t collect(char *ptr, size_t size, size_t n, void *userdata)
{
	struct body *b = userdata;
	size_t len = size * n;
	if (len >= sizeof b->data - b->len)
		return 0;
	memcpy(b->data + b->len, ptr, len);
	b->len += len;
	b->data[b->len] = '\0';
	return len;
}

/* fetch POSTs the request and leaves signerd's answer in b. */
static int fetch(const struct config *c, struct body *b)
{
	int ret = -1;
	char url[512], req[128];
	char *pk = NULL, *dn = NULL;
	struct curl_slist *headers = NULL;
	CURL *h = curl_easy_init();
	if (h == NULL) {
		logf_("curl_easy_init failed");
		return -1;
	}
	pk = curl_easy_escape(h, c->product_key, 0);
	dn = curl_easy_escape(h, c->device_name, 0);
	if (pk == NULL || dn == NULL)
		goto out;
	size_t base = strlen(c->signerd);
	while (base > 0 && c->signerd[base - 1] == '/')
		base--;
	int n = snprintf(url, sizeof url, "%.*s/v1/products/%s/devices/%s:signMqttConnect", (int)base, c->signerd, pk,
			 dn);
	if (n < 0 || (size_t)n >= sizeof url) {
		logf_("--signerd: URL too long");
		goto out;
	}
	/* transport and sign_method come from a fixed table: no escaping. */
	n = snprintf(req, sizeof req, "{\"transport\":\"%s\",\"signMethod\":\"%s\"}", c->transport, c->sign_method);
	if (n < 0 || (size_t)n >= sizeof req)
		goto out;
	headers = curl_slist_append(headers, "Content-Type: application/json");
	if (headers == NULL)
		goto out;

	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https"); /* never plain HTTP */
	curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	curl_easy_setopt(h, CURLOPT_SSLCERT, c->cert);
	curl_easy_setopt(h, CURLOPT_SSLKEY, c->key);
	if (c->ca != NULL)
		curl_easy_setopt(h, CURLOPT_CAINFO, c->ca);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, req);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)TIMEOUT_SECONDS);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);

	CURLcode rc = curl_easy_perform(h);
	if (rc != CURLE_OK) {
		logf_("signerd: %s", curl_easy_strerror(rc));
		goto out;
	}
	long status = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200) {
		/* signerd's errors name the field and never carry a secret. */
		logf_("signerd: HTTP %ld: %s", status, b->data);
		goto out;
	}
	ret = 0;
out:
	curl_slist_free_all(headers);
	curl_free(pk);
	curl_free(dn);
	curl_easy_cleanup(h);
	return ret;
}

/* --- the answer ----------------------------------------------------------- */

/* cJSON's allocations are wiped when freed: the parsed answer holds the
 * password, which must not linger in freed heap after we copied it. */
static void wiping_free(void *p)
{
	if (p != NULL)
		explicit_bzero(p, malloc_usable_size(p));
	free(p);
}

/* copy_str copies the string field name of o into dst (size bytes),
 * refusing rather than truncating. */
static int copy_str(char *dst, size_t size, const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	if (!cJSON_IsString(v) || v->valuestring == NULL || v->valuestring[0] == '\0') {
		logf_("signerd's answer: %s missing or not a string", name);
		return -1;
	}
	size_t len = strlen(v->valuestring);
	if (len >= size) {
		logf_("signerd's answer: %s is %zu bytes, longer than %zu", name, len, size - 1);
		return -1;
	}
	memcpy(dst, v->valuestring, len + 1);
	return 0;
}

static int copy_int(int *dst, const cJSON *o, const char *name, int lo, int hi)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	if (!cJSON_IsNumber(v) || v->valuedouble != (double)v->valueint || v->valueint < lo || v->valueint > hi) {
		logf_("signerd's answer: %s missing or not an integer in [%d, %d]", name, lo, hi);
		return -1;
	}
	*dst = v->valueint;
	return 0;
}

static int parse_answer(const struct body *b, struct answer *a)
{
	cJSON *o = cJSON_ParseWithLength(b->data, b->len);
	if (!cJSON_IsObject(o)) {
		logf_("signerd's answer is not a JSON object");
		cJSON_Delete(o);
		return -1;
	}
	int ret = -1;
	if (copy_str(a->host, sizeof a->host, o, "host") || copy_int(&a->port, o, "port", 1, 65535) ||
	    copy_str(a->uri, sizeof a->uri, o, "uri") ||
	    copy_str(a->client_id, sizeof a->client_id, o, "clientId") ||
	    copy_str(a->username, sizeof a->username, o, "username") ||
	    copy_str(a->password, sizeof a->password, o, "password") ||
	    /* the platform's keep-alive range */
	    copy_int(&a->keep_alive, o, "keepAliveSeconds", 30, 1200))
		goto out;
	/* protojson leaves out a false bool. */
	a->clean_session = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "cleanSession"));
	ret = 0;
out:
	cJSON_Delete(o);
	return ret;
}

/* --- MQTT ----------------------------------------------------------------- */

struct session {
	bool connack;
	int connack_rc;
	int want_mid; /* the message whose PUBACK we await */
	bool acked;
	bool lost;
};

static void on_connect(struct mosquitto *m, void *obj, int rc)
{
	(void)m;
	struct session *s = obj;
	s->connack = true;
	s->connack_rc = rc;
}

static void on_publish(struct mosquitto *m, void *obj, int mid)
{
	(void)m;
	struct session *s = obj;
	if (mid == s->want_mid)
		s->acked = true;
}

static void on_disconnect(struct mosquitto *m, void *obj, int rc)
{
	(void)m;
	struct session *s = obj;
	if (rc != 0)
		s->lost = true;
}

/* run_until turns the network loop until *done or the deadline. */
static int run_until(struct mosquitto *m, const bool *done, const struct session *s)
{
	time_t deadline = time(NULL) + TIMEOUT_SECONDS;
	while (!*done) {
		int rc = mosquitto_loop(m, 1000, 1);
		if (rc != MOSQ_ERR_SUCCESS) {
			logf_("MQTT: %s", mosquitto_strerror(rc));
			return -1;
		}
		if (s->lost && !*done) {
			logf_("MQTT: the broker closed the connection");
			return -1;
		}
		if (time(NULL) > deadline) {
			logf_("MQTT: no answer from the broker in %d s", TIMEOUT_SECONDS);
			return -1;
		}
	}
	return 0;
}

/* report builds the Alink property report. */
static char *report(double temperature)
{
	char *out = NULL;
	cJSON *o = cJSON_CreateObject();
	cJSON *params = cJSON_CreateObject();
	cJSON *sys = cJSON_CreateObject();
	if (o == NULL || params == NULL || sys == NULL)
		goto out;
	if (!cJSON_AddNumberToObject(params, "temperature", temperature) || !cJSON_AddNumberToObject(sys, "ack", 0) ||
	    !cJSON_AddStringToObject(o, "id", "1") || !cJSON_AddStringToObject(o, "version", "1.0"))
		goto out;
	cJSON_AddItemToObject(o, "sys", sys);
	sys = NULL;
	cJSON_AddItemToObject(o, "params", params);
	params = NULL;
	if (!cJSON_AddStringToObject(o, "method", "thing.event.property.post"))
		goto out;
	out = cJSON_PrintUnformatted(o);
out:
	cJSON_Delete(o);
	cJSON_Delete(params);
	cJSON_Delete(sys);
	return out;
}

static volatile sig_atomic_t stop;
static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

/* hold keeps the connection alive until SIGTERM or SIGINT. */
static void hold(struct mosquitto *m)
{
	logf_("holding; send SIGTERM to exit");
	while (!stop) {
		if (mosquitto_loop(m, 1000, 1) != MOSQ_ERR_SUCCESS)
			sleep(1); /* connection gone: keep still, do not reconnect */
	}
}

static int publish(const struct config *c, const struct answer *a)
{
	int ret = -1;
	struct session s = {.want_mid = -1};
	char topic[TOPIC_MAX];
	char *payload = NULL;
	int n = snprintf(topic, sizeof topic, "/sys/%s/%s/thing/event/property/post", c->product_key, c->device_name);
	if (n < 0 || (size_t)n >= sizeof topic)
		return -1;

	struct mosquitto *m = mosquitto_new(a->client_id, a->clean_session, &s);
	if (m == NULL) {
		logf_("mosquitto_new: %s", strerror(errno));
		return -1;
	}
	mosquitto_connect_callback_set(m, on_connect);
	mosquitto_publish_callback_set(m, on_publish);
	mosquitto_disconnect_callback_set(m, on_disconnect);
	int rc = mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
	if (rc == MOSQ_ERR_SUCCESS)
		rc = mosquitto_username_pw_set(m, a->username, a->password);
	if (rc == MOSQ_ERR_SUCCESS && strcmp(c->transport, "TRANSPORT_TLS") == 0)
		/* No CA file: the platform's endpoints chain to public roots. */
		rc = mosquitto_tls_set(m, c->broker_ca, c->broker_ca ? NULL : "/etc/ssl/certs", NULL, NULL, NULL);
	if (rc != MOSQ_ERR_SUCCESS) {
		logf_("MQTT setup: %s", mosquitto_strerror(rc));
		goto out;
	}
	rc = mosquitto_connect(m, a->host, a->port, a->keep_alive);
	if (rc != MOSQ_ERR_SUCCESS) {
		logf_("connecting to %s: %s", a->uri, rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
		goto out;
	}
	if (run_until(m, &s.connack, &s) != 0)
		goto out;
	if (s.connack_rc != 0) {
		logf_("CONNECT refused: %s", mosquitto_connack_string(s.connack_rc));
		goto out;
	}
	logf_("connected to %s as %s", a->uri, a->username);

	payload = report(c->temperature);
	if (payload == NULL) {
		logf_("building the report: out of memory");
		goto out;
	}
	rc = mosquitto_publish(m, &s.want_mid, topic, (int)strlen(payload), payload, 1, false);
	if (rc != MOSQ_ERR_SUCCESS) {
		logf_("publish: %s", mosquitto_strerror(rc));
		goto out;
	}
	if (run_until(m, &s.acked, &s) != 0) {
		logf_("publish: no PUBACK from the broker");
		goto out;
	}
	logf_("published %s on %s", payload, topic);
	if (c->hold)
		hold(m);
	mosquitto_disconnect(m);
	ret = 0;
out:
	cJSON_free(payload);
	mosquitto_destroy(m);
	return ret;
}

/* --- main ----------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: %s --signerd URL --cert FILE --key FILE --product-key PK --device-name DN\n"
		"          [--ca FILE] [--broker-ca FILE] [--transport tls|tcp]\n"
		"          [--sign-method hmacsha256|hmacsha1|hmacmd5] [--temperature N] [--hold]\n",
		prog);
}

/* lookup maps a flag value to signerd's enum name. */
static const char *lookup(const char *v, const char *const table[][2])
{
	for (size_t i = 0; table[i][0] != NULL; i++)
		if (strcmp(v, table[i][0]) == 0)
			return table[i][1];
	return NULL;
}

static bool valid_name(const char *s)
{
	size_t n = strlen(s);
	return n > 0 && n <= NAME_MAX_LEN;
}

int main(int argc, char **argv)
{
	static const char *const transports[][2] = {
		{"tls", "TRANSPORT_TLS"}, {"tcp", "TRANSPORT_TCP"}, {NULL, NULL}};
	static const char *const methods[][2] = {{"hmacsha256", "SIGN_METHOD_HMAC_SHA256"},
						 {"hmacsha1", "SIGN_METHOD_HMAC_SHA1"},
						 {"hmacmd5", "SIGN_METHOD_HMAC_MD5"},
						 {NULL, NULL}};
	static const struct option opts[] = {
		{"signerd", required_argument, NULL, 's'},     {"cert", required_argument, NULL, 'c'},
		{"key", required_argument, NULL, 'k'},         {"ca", required_argument, NULL, 'a'},
		{"broker-ca", required_argument, NULL, 'b'},   {"product-key", required_argument, NULL, 'p'},
		{"device-name", required_argument, NULL, 'd'}, {"transport", required_argument, NULL, 't'},
		{"sign-method", required_argument, NULL, 'm'}, {"temperature", required_argument, NULL, 'T'},
		{"hold", no_argument, NULL, 'H'},              {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}};
	struct config c = {.transport = "TRANSPORT_TLS", .sign_method = "SIGN_METHOD_HMAC_SHA256", .temperature = 21.5};
	const char *transport = "tls", *method = "hmacsha256";
	char *end;
	int o;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 's': c.signerd = optarg; break;
		case 'c': c.cert = optarg; break;
		case 'k': c.key = optarg; break;
		case 'a': c.ca = optarg; break;
		case 'b': c.broker_ca = optarg; break;
		case 'p': c.product_key = optarg; break;
		case 'd': c.device_name = optarg; break;
		case 't': transport = optarg; break;
		case 'm': method = optarg; break;
		case 'T':
			errno = 0;
			c.temperature = strtod(optarg, &end);
			if (errno != 0 || end == optarg || *end != '\0') {
				logf_("--temperature: %s is not a number", optarg);
				return 2;
			}
			break;
		case 'H': c.hold = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc || c.signerd == NULL || c.cert == NULL || c.key == NULL || c.product_key == NULL ||
	    c.device_name == NULL) {
		logf_("--signerd, --cert, --key, --product-key and --device-name are required");
		usage(stderr);
		return 2;
	}
	if (!valid_name(c.product_key) || !valid_name(c.device_name)) {
		logf_("--product-key and --device-name: 1 to %d characters", NAME_MAX_LEN);
		return 2;
	}
	if ((c.transport = lookup(transport, transports)) == NULL) {
		logf_("--transport: want tls or tcp, not %s", transport);
		return 2;
	}
	if ((c.sign_method = lookup(method, methods)) == NULL) {
		logf_("--sign-method: want hmacsha256, hmacsha1 or hmacmd5, not %s", method);
		return 2;
	}
	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	cJSON_Hooks hooks = {.malloc_fn = malloc, .free_fn = wiping_free};
	cJSON_InitHooks(&hooks);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || mosquitto_lib_init() != MOSQ_ERR_SUCCESS) {
		logf_("library initialisation failed");
		return 1;
	}
	int ret = 1;
	/* static: keeps the credentials off the stack of later calls. */
	static struct body b;
	static struct answer a;
	if (fetch(&c, &b) == 0 && parse_answer(&b, &a) == 0) {
		explicit_bzero(&b, sizeof b); /* the copy in a is the only one kept */
		if (publish(&c, &a) == 0)
			ret = 0;
	}
	explicit_bzero(&b, sizeof b);
	explicit_bzero(&a, sizeof a);
	mosquitto_lib_cleanup();
	curl_global_cleanup();
	return ret;
}
