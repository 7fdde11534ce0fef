-- One database per Directus instance of the mesh.
CREATE DATABASE directus_a;
CREATE DATABASE directus_b;
CREATE DATABASE directus_c;
