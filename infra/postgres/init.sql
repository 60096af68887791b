-- One database per service: no service reads another's tables.
CREATE DATABASE members;
CREATE DATABASE events;
CREATE DATABASE matching;
CREATE DATABASE notifications;
CREATE DATABASE meetings;
